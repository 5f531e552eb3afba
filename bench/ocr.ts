/**
 * OCR figures, each beside a baseline from the same run:
 * - seconds per scanned page (extractText on a PDF of 200 dpi scans), beside the same pages with a text layer;
 * - what OCR costs a photo without text (analyzeImage with OCR, which stops at tesseract's layout check), beside
 *   analyzeImage with `ocr: false`;
 * - the process's peak RSS while it reads, beside its RSS before.
 * The steps run in the inline runtime's step threads, as `process` runs them; the step's own durationMs is measured.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/lib/log.js';
import type { JobDocument, StepName } from '../src/lib/types.js';
import { createRuntime } from '../src/runtime.js';
import { makePdf, scanPage, wrap } from '../test/scan-fixtures.js';

const PROSE =
  'Harbour records from the winter season describe seventeen vessels that entered the northern basin before the ' +
  'ice closed the channel. The harbour master noted that cargo of timber, salted fish and woollen cloth was ' +
  'unloaded within three days, and that the pilots guided every ship past the shoals without loss. Merchants ' +
  'complained about the price of storage in the warehouses near the lighthouse, and the council agreed to build a ' +
  'second quay on the eastern shore before the spring tides returned. ';
const PHOTOS = [
  'image/landscape-exif-orientation-5.jpg',
  'image/flowers.jpeg',
  'image/camera-gps-dscn0010.jpg',
  'image/camera-canon-ixus.jpg',
  'image/photo.webp',
  'faces/group.jpg',
];

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function benchOcr(
  work: string,
  corpus: string,
  pages: number,
  row: (label: string, value: string) => void,
): Promise<void> {
  const dir = path.join(work, 'ocr');
  fs.mkdirSync(dir, { recursive: true });
  // A page of prose: about 1,900 characters, 28 lines.
  const lines = wrap(PROSE.repeat(4), 64);
  const scan = await scanPage(lines, 200);
  fs.writeFileSync(path.join(dir, 'scan.pdf'), makePdf(Array.from({ length: pages }, () => scan)));
  fs.writeFileSync(path.join(dir, 'text.pdf'), makePdf(Array.from({ length: pages }, () => ({ lines }))));
  fs.writeFileSync(path.join(dir, 'warm.pdf'), makePdf([await scanPage(['Warm up'], 200)]));

  const config = loadConfig({ DATA_DIR: path.join(dir, 'data'), AI_PROVIDERS: 'vision=off' });
  const runtime = await createRuntime(config, createLogger('warn'));
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  let n = 0;
  const stepMs = async (file: string, step: StepName, instructions: Record<string, unknown>): Promise<number> => {
    const doc: JobDocument = await runtime.runner.run({
      jobId: `ocr-${n++}`,
      file: { path: file },
      instructions: { skip: ['renderPreview', 'summarize'], ...instructions },
    });
    const record = doc.steps[step];
    if (doc.status !== 'completed' || record?.status !== 'succeeded')
      throw new Error(`${file}: ${doc.status} ${JSON.stringify(doc.error ?? record)}`);
    return record.durationMs!;
  };
  try {
    // Both threads of the pool start tesseract before anything is measured.
    await Promise.all([0, 1].map(() => stepMs(path.join(dir, 'warm.pdf'), 'extractText', {})));
    const rssBefore = process.memoryUsage().rss;
    peak = rssBefore;
    const textMs = await stepMs(path.join(dir, 'text.pdf'), 'extractText', {});
    const scanMs = await stepMs(path.join(dir, 'scan.pdf'), 'extractText', {});
    row(`extractText, ${pages} pages with a text layer (baseline)`, `${(textMs / pages / 1000).toFixed(3)} s per page`);
    row(
      `extractText, ${pages} pages scanned at 200 dpi, read by OCR`,
      `${(scanMs / pages / 1000).toFixed(2)} s per page`,
    );

    const photos = PHOTOS.map((p) => path.join(corpus, p)).filter((p) => fs.existsSync(p));
    const off: number[] = [];
    const on: number[] = [];
    for (const photo of photos) {
      off.push(await stepMs(photo, 'analyzeImage', { ocr: false }));
      on.push(await stepMs(photo, 'analyzeImage', {}));
    }
    row(`analyzeImage, ${photos.length} photos without text, ocr: false (baseline)`, `${median(off)} ms median`);
    row(`analyzeImage, the same photos with OCR (layout check)`, `${median(on)} ms median`);
    row('  OCR cost per photo without text (median of differences)', `${median(on.map((x, i) => x - off[i]!))} ms`);
    row('process RSS before OCR (baseline) / peak while reading', `${mb(rssBefore)} / ${mb(peak)} MB`);

    // Step threads doing HEIC and OCR: a job on each phone HEIF photo (validate decodes it with libheif in its step
    // thread, the first decode loading the module there; analyzeImage looks for its text with tesseract in the
    // thread that thread starts; thumbnails decode it beside that). What the whole process grew by at its peak over
    // its resident set before the job bounds what any one of those threads held; beside the step's ceiling.
    for (const photo of ['image/iphone.heic', 'image/phone-hdr.heif'].map((p) => path.join(corpus, p))) {
      if (!fs.existsSync(photo)) continue;
      const before = process.memoryUsage().rss;
      peak = before;
      await stepMs(photo, 'analyzeImage', {});
      peak = Math.max(peak, process.memoryUsage().rss);
      row(
        `a job on ${path.basename(photo)} (HEIC decode, OCR): process peak growth / STEP_MEMORY_MB`,
        `${mb(peak - before)} / ${config.stepMemoryMb} MB`,
      );
    }
  } finally {
    clearInterval(sampler);
    await runtime.close();
  }
}

const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(0);
