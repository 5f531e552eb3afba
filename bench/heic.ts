/**
 * HEIC decoding (src/lib/heif.ts: header, then libheif in WebAssembly) of the corpus's 12 MP iPhone photo, as
 * validate does it (the thread's libheif module, the primary image decoded to RGBA, then the decoded copy encoded), beside
 * the baseline of a JPEG of the same picture and size decoded by sharp (libvips, libjpeg-turbo) in the same run. One
 * decode at a time, in this thread; the median of the rounds. Also the memory: how far the resident set grew during
 * a decode, against what the step counts against STEP_MEMORY_MB for it (heifDecodeBytes).
 */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { decodeHeif, encodeDecoded, heifDecodeBytes, readHeifHeader, type DecodedPicture } from '../src/lib/heif.js';

const ROUNDS = 5;
const MB = 2 ** 20;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

/** The largest resident set seen while `fn` runs, sampled every 5 ms, less the resident set before it, in bytes. */
async function rssGrowth(fn: () => Promise<unknown>): Promise<number> {
  const before = process.memoryUsage.rss();
  let peak = before;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 5);
  try {
    await fn();
  } finally {
    clearInterval(timer);
  }
  return Math.max(peak, process.memoryUsage.rss()) - before;
}

export async function benchHeic(
  work: string,
  corpus: string,
  row: (label: string, value: string) => void,
): Promise<void> {
  const file = path.join(corpus, 'image', 'iphone.heic');
  const header = await readHeifHeader(file);
  const mp = ((header.width * header.height) / 1e6).toFixed(1);
  let first: DecodedPicture = { data: Buffer.alloc(0), width: 0, height: 0 };
  // The first decode in this process: the growth includes loading libheif's module.
  const firstGrowth = await rssGrowth(async () => {
    first = await decodeHeif(file, header);
  });
  const afterFirst = process.memoryUsage.rss();
  // One module for every decode: later decodes reuse its memory instead of adding to it.
  let laterGrowth = 0;
  for (let i = 0; i < ROUNDS; i++) laterGrowth = Math.max(laterGrowth, await rssGrowth(() => decodeHeif(file, header)));
  const sinceFirst = Math.max(process.memoryUsage.rss() - afterFirst, laterGrowth);
  // The baseline: the same picture, the same size, as a camera JPEG (quality 92).
  const jpeg = path.join(work, 'heic-baseline.jpg');
  await sharp(first.data, { raw: { width: first.width, height: first.height, channels: 4 } })
    .removeAlpha()
    .jpeg({ quality: 92 })
    .toFile(jpeg);
  const jpegBytes = fs.statSync(jpeg).size;

  const decode: number[] = [];
  const copy: number[] = [];
  const baseline: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    let picture = first;
    decode.push(
      await timed(async () => {
        picture = await decodeHeif(file, await readHeifHeader(file));
      }),
    );
    copy.push(await timed(() => encodeDecoded(picture, header.hasAlpha)));
    baseline.push(await timed(() => sharp(jpeg).raw().toBuffer()));
  }

  const size = `${header.width}x${header.height}, ${mp} MP`;
  row(`HEIC decode per 12 MP photo (${size}, ${(fs.statSync(file).size / MB).toFixed(1)} MB)`, ms(decode));
  row('  then its decoded copy (JPEG q95 4:4:4)', ms(copy));
  row(`JPEG of the same size decoded by sharp (baseline, ${(jpegBytes / MB).toFixed(1)} MB)`, ms(baseline));
  row('ratio HEIC decode / JPEG decode', (median(decode) / median(baseline)).toFixed(1));
  row('resident set growth: first decode in this process', `${(firstGrowth / MB).toFixed(0)} MB`);
  row(`  then across ${ROUNDS} more decodes`, `${(sinceFirst / MB).toFixed(0)} MB`);
  row(
    '  counted against STEP_MEMORY_MB for it',
    `${(heifDecodeBytes(header, fs.statSync(file).size) / MB).toFixed(0)} MB`,
  );
}

function ms(xs: number[]): string {
  return `${median(xs).toFixed(0)} ms (median of ${xs.length}, ${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)})`;
}
