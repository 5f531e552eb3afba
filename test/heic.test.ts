/**
 * HEIF/HEIC photos, decoded by libheif in WebAssembly (lib/heif.ts): real phone photos from the corpus complete with
 * upright thumbnails, EXIF and GPS, and an analysis; validate decodes the photo once and every later image step reads
 * its copy; the size is checked from the header (`ispe`) before anything is decoded; a damaged file is CORRUPT_FILE;
 * an image sequence without a still says why it is refused, and one that carries a still gives that still.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';
import { DECODED_NAMES } from '../src/lib/heif.js';
import { createLogger } from '../src/lib/log.js';
import type { JobDocument } from '../src/lib/types.js';
import { executeStep, type StepInput } from '../src/nodes/index.js';
import { createRuntime, type Runtime } from '../src/runtime.js';
import { resolveToolPaths } from '../src/lib/tools.js';
import { CORPUS, ROOT, tempDir } from './helpers.js';

const dir = tempDir('heic');
const corpus = (name: string): string => path.join(CORPUS, 'image', name);
let runtime: Runtime;

beforeAll(async () => {
  runtime = await createRuntime(loadConfig({ DATA_DIR: path.join(dir, 'data') }), createLogger('silent'));
}, 120_000);

afterAll(async () => {
  await runtime?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const run = (jobId: string, file: string, rt: Runtime = runtime): Promise<JobDocument> =>
  rt.runner.run({ jobId, file: { path: file } });

/** A copy of `source` under the test's folder with `edit` applied to its bytes. */
function edited(name: string, source: string, edit: (bytes: Buffer) => Buffer): string {
  const out = path.join(dir, name);
  fs.writeFileSync(out, edit(fs.readFileSync(source)));
  return out;
}

const artifactPath = (rt: Runtime, jobId: string, name: string): string => rt.deps.artifacts.path(jobId, name);

describe('phone photos from the corpus', () => {
  test('an iPhone HEIC: upright thumbnails, EXIF and GPS, labels', { timeout: 240_000 }, async () => {
    const doc = await run('iphone', corpus('iphone.heic'));
    expect(doc.status, JSON.stringify(doc.error)).toBe('completed');
    expect(doc.fileType).toBe('image');
    const meta = doc.results.metadata!;
    // Stored 4032x3024 and turned a quarter by its irot box: a portrait.
    expect([meta.width, meta.height]).toEqual([3024, 4032]);
    expect(meta.exif).toMatchObject({ Make: 'Apple', Model: 'iPhone 7 Plus' });
    // Its EXIF says "rotate 90" too; applying it on top of irot would lay the picture on its side.
    expect(meta.exif?.Orientation).toBe('Rotate 90 CW');
    expect(meta.gps?.latitude).toBeCloseTo(42.7748833, 5);
    expect(meta.gps?.longitude).toBeCloseTo(-71.076875, 5);
    const thumbs = doc.results.thumbnails!;
    expect(thumbs.length).toBeGreaterThan(0);
    for (const t of thumbs) {
      expect(t.height).toBeGreaterThan(t.width);
      const file = await sharp(artifactPath(runtime, 'iphone', path.basename(t.url))).metadata();
      expect([file.width, file.height]).toEqual([t.width, t.height]);
      expect(t.width / t.height).toBeCloseTo(3024 / 4032, 2);
    }
    expect(doc.results.placeholder?.value).toMatch(/^[A-Za-z0-9+/=]{10,}$/);
    // A man in front of a screen of fireworks: the offline detector sees him, upright.
    const analysis = doc.results.analysis!;
    expect(doc.steps.analyzeImage?.status).toBe('succeeded');
    expect(analysis.labels.map((l) => l.name)).toContain('person');
    expect(analysis.phash).toMatch(/^[0-9a-f]{16}$/);
    // The decoded copy the steps shared, upright too.
    const copy = await sharp(artifactPath(runtime, 'iphone', DECODED_NAMES.opaque)).metadata();
    expect([copy.width, copy.height]).toEqual([3024, 4032]);
  });

  test('an Android HEIF (HDR) and a small HEIF: decoded, with GPS where the phone wrote it', async () => {
    const hdr = await run('nokia', corpus('phone-hdr.heif'));
    expect(hdr.status, JSON.stringify(hdr.error)).toBe('completed');
    expect([hdr.results.metadata?.width, hdr.results.metadata?.height]).toEqual([4608, 3456]);
    expect(hdr.results.metadata?.gps?.latitude).toBeCloseTo(40.6629935, 5);
    expect(hdr.results.thumbnails?.every((t) => t.width > t.height)).toBe(true);
    expect(hdr.results.analysis?.brightness).toBeGreaterThan(0);

    const small = await run('small', corpus('small.heif'));
    expect(small.status, JSON.stringify(small.error)).toBe('completed');
    expect(small.results.thumbnails?.map((t) => [t.width, t.height])).toContainEqual([640, 426]);
  }, 240_000);
});

describe('decoded once per job', () => {
  test('thumbnails and analysis read the copy validate decoded, not the HEIC', { timeout: 120_000 }, async () => {
    const deps = runtime.deps;
    const input: StepInput = { jobId: 'once', file: { path: corpus('small.heif') } } as StepInput;
    const opts = { attempt: 1, timeoutMs: 60_000 };
    const { outcome: validated } = await executeStep('validate', input, deps, opts);
    if (validated.status !== 'succeeded') throw new Error(`validate: ${validated.status}`);
    expect(validated.fileType).toBe('image');
    const copy = artifactPath(runtime, 'once', DECODED_NAMES.opaque);
    expect((await sharp(copy).metadata()).width).toBe(640);
    // Replace the copy with pure red: steps that decoded the HEIC themselves would not see red.
    const red = await sharp({ create: { width: 640, height: 426, channels: 3, background: '#ff0000' } })
      .jpeg()
      .toBuffer();
    fs.writeFileSync(copy, red);
    const next = { ...input, fileType: 'image', fileInfo: validated.fileInfo } as StepInput;
    const { outcome: thumbs } = await executeStep('generateThumbnails', next, deps, opts);
    if (thumbs.status !== 'succeeded') throw new Error(`generateThumbnails: ${thumbs.status}`);
    const first = thumbs.results?.thumbnails?.[0];
    if (!first) throw new Error('no thumbnail');
    const { dominant } = await sharp(artifactPath(runtime, 'once', path.basename(first.url))).stats();
    expect(dominant.r).toBeGreaterThan(200);
    expect(dominant.g + dominant.b).toBeLessThan(60);
    const { outcome: analysed } = await executeStep('analyzeImage', next, deps, opts);
    if (analysed.status !== 'succeeded') throw new Error(`analyzeImage: ${analysed.status}`);
    expect(analysed.results?.analysis?.dominantColor).toMatch(/^#f[0-9a-f]0/);
  });
});

/** Every `ispe` property (the stored size of an image or tile) set to width x height. */
function claimSize(bytes: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(bytes);
  for (let at = out.indexOf('ispe'); at >= 0; at = out.indexOf('ispe', at + 4)) {
    // ispe: type, then version and flags (4 bytes), then width and height.
    out.writeUInt32BE(width, at + 8);
    out.writeUInt32BE(height, at + 12);
  }
  return out;
}

describe('limits, from the header', () => {
  test('a HEIC whose ispe claims 40000x40000 is TOO_LARGE, with nothing decoded', async () => {
    const file = edited('huge.heic', corpus('iphone.heic'), (b) => claimSize(b, 40_000, 40_000));
    const doc = await run('huge', file);
    expect(doc.status).toBe('failed');
    expect(doc.error).toMatchObject({ code: 'TOO_LARGE', step: 'validate' });
    expect(doc.error?.message).toMatch(/40000x40000 .*MAX_IMAGE_PIXELS/);
    expect(fs.existsSync(artifactPath(runtime, 'huge', DECODED_NAMES.opaque))).toBe(false);
  });

  test('a real photo over MAX_IMAGE_PIXELS, and one over STEP_MEMORY_MB, are refused', async () => {
    const rt = await createRuntime(
      loadConfig({ DATA_DIR: path.join(dir, 'small-limits'), MAX_IMAGE_PIXELS: '10000000', STEP_MEMORY_MB: '160' }),
      createLogger('silent'),
    );
    try {
      // 3024x4032 is 12.2 million pixels.
      const tooMany = await run('pixels', corpus('iphone.heic'), rt);
      expect(tooMany.error).toMatchObject({ code: 'TOO_LARGE', step: 'validate' });
      expect(tooMany.error?.message).toMatch(/4032x3024 \(12192768 pixels\)/);
      // 640x426 fits both; 16 MP of HDR decoded in WebAssembly does not fit 160 MB.
      const fits = await run('fits', corpus('small.heif'), rt);
      expect(fits.status, JSON.stringify(fits.error)).toBe('completed');
      const rt2 = await createRuntime(
        loadConfig({ DATA_DIR: path.join(dir, 'memory'), STEP_MEMORY_MB: '160' }),
        createLogger('silent'),
      );
      try {
        const memory = await run('memory', corpus('phone-hdr.heif'), rt2);
        expect(memory.error).toMatchObject({ code: 'RESOURCE_LIMIT', step: 'validate' });
        expect(memory.error?.message).toMatch(/STEP_MEMORY_MB=160/);
      } finally {
        await rt2.close();
      }
    } finally {
      await rt.close();
    }
  }, 180_000);
});

describe('damaged and unusual HEIF files', () => {
  test('a HEIC cut short is CORRUPT_FILE, saying where its data ends', async () => {
    const file = edited('cut.heic', corpus('iphone.heic'), (b) => b.subarray(0, Math.floor(b.length * 0.6)));
    const doc = await run('cut', file);
    expect(doc.status).toBe('failed');
    expect(doc.error).toMatchObject({ code: 'CORRUPT_FILE', step: 'validate' });
    expect(doc.error?.message).toMatch(/cut short: the image data runs to byte \d+, the file ends at byte \d+/);
  });

  test("a HEIC whose image data is damaged inside is CORRUPT_FILE, with libheif's reason", async () => {
    // small.heif: ftyp, meta (to byte 463), then the HEVC data; zeros over most of that data.
    const file = edited('zeros.heic', corpus('small.heif'), (b) => b.fill(0, 2000, 20_000));
    const doc = await run('zeros', file);
    expect(doc.status).toBe('failed');
    expect(doc.error).toMatchObject({ code: 'CORRUPT_FILE', step: 'validate' });
    expect(doc.error?.message).toMatch(/HEIF file is damaged: .*(decoder|end of file)/i);
    // The thread's libheif module decodes the next photo as before.
    const after = await run('after-zeros', corpus('small.heif'));
    expect(after.status, JSON.stringify(after.error)).toBe('completed');
  });

  test('a HEIC whose meta box is cut is CORRUPT_FILE too', async () => {
    const file = edited('no-meta.heic', corpus('small.heif'), (b) => b.subarray(0, 300));
    const doc = await run('no-meta', file);
    expect(doc.error).toMatchObject({ code: 'CORRUPT_FILE', step: 'validate' });
    expect(doc.error?.message).toMatch(/HEIF file is damaged/);
  });

  test('an image sequence with no still image is UNSUPPORTED_TYPE, saying why', async () => {
    // HEVC frames in an ISOBMFF file branded msf1, as a phone's burst or animation: a track, no primary item.
    const file = path.join(dir, 'sequence.heic');
    const { ffmpeg } = resolveToolPaths();
    execFileSync(ffmpeg, [
      ...['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=5', '-frames:v', '5'],
      ...['-c:v', 'libx265', '-x265-params', 'log-level=error', '-tag:v', 'hvc1', '-brand', 'msf1', '-f', 'mp4'],
      file,
    ]);
    const doc = await run('sequence', file);
    expect(doc.status).toBe('failed');
    expect(doc.error).toMatchObject({ code: 'UNSUPPORTED_TYPE', step: 'validate' });
    expect(doc.error?.message).toMatch(/image sequence .* no primary still image/);
    expect(doc.file?.mime).toBe('image/heif-sequence');
  });

  test('an image sequence that carries a primary still gives that still', async () => {
    // nokiatech/heif_conformance C046.heic: an msf1 file with a sequence track and a 1280x720 primary image.
    const doc = await run('sequence-still', path.join(ROOT, 'test', 'fixtures', 'heif-sequence-with-still.heic'));
    expect(doc.status, JSON.stringify(doc.error)).toBe('completed');
    expect([doc.results.metadata?.width, doc.results.metadata?.height]).toEqual([1280, 720]);
    expect(doc.results.thumbnails?.length).toBeGreaterThan(0);
  });
});
