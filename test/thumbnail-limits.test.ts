/**
 * What one job's thumbnail instructions may cost: the widths together and the pixels they can make are bounded at
 * intake; the decoded picture a crop is cut from is bounded whatever the source's shape (a 4096x60000 PNG cropped to
 * a 4096 square held the whole 737 MB decode); the native memory a step will hold counts against STEP_MEMORY_MB;
 * AVIF's encoder effort goes down as the pixels go up; and a step that is stopped leaves no artifact behind.
 */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { avifEffort } from '../src/lib/image.js';
import { InstructionsSchema, type Instructions } from '../src/lib/instructions.js';
import { createLogger } from '../src/lib/log.js';
import { executeStep } from '../src/nodes/index.js';
import { createRuntime, type Runtime } from '../src/runtime.js';
import { tempDir } from './helpers.js';

const dir = tempDir('thumbnail-limits');
let tall: string;

beforeAll(async () => {
  // 4096x60000, one colour: 800 KB of PNG that decodes to 737 MB of pixels.
  tall = path.join(dir, 'tall.png');
  await sharp({ create: { width: 4096, height: 60_000, channels: 3, background: '#3070a0' } })
    .png({ compressionLevel: 9 })
    .toFile(tall);
}, 120_000);

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Gaussian noise around mid-grey: pixels no encoder can make small. */
const noise = (width: number, height: number, sigma: number) =>
  sharp({ create: { width, height, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma } } });

/** The largest resident set this process has had, in MB (Linux). */
function peakRssMb(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new Error('no VmHWM in /proc/self/status');
  return Number(m[1]) / 1024;
}

async function withRuntime<T>(name: string, env: Record<string, string>, fn: (rt: Runtime) => Promise<T>): Promise<T> {
  const runtime = await createRuntime(loadConfig({ DATA_DIR: path.join(dir, name), ...env }), createLogger('silent'));
  try {
    return await fn(runtime);
  } finally {
    await runtime.close();
  }
}

const thumbnailsOnly = (thumbnails: Instructions['thumbnails']): Instructions => ({
  thumbnails,
  skip: ['analyzeImage'],
});

describe('the instructions', () => {
  const refused = (thumbnails: unknown): string => {
    const r = InstructionsSchema.safeParse({ thumbnails });
    if (r.success) throw new Error(`accepted ${JSON.stringify(thumbnails)}`);
    return r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
  };

  test('six widths near 4096 are refused: together they are more than one job may ask for', () => {
    expect(refused({ widths: [4096, 4000, 3900, 3800, 3700, 3600], format: 'avif', quality: 100 })).toMatch(
      /thumbnails\.widths: .*8192/,
    );
  });

  test('two of the largest are refused by the pixels they can make, the halving ladder from 4096 is not', () => {
    expect(refused({ widths: [4096, 4096] })).toMatch(/thumbnails\.widths: .*pixels/);
    expect(InstructionsSchema.safeParse({ thumbnails: { widths: [4096, 2048, 1024, 512, 256, 128] } }).success).toBe(
      true,
    );
    expect(InstructionsSchema.safeParse({ thumbnails: { widths: [4096], fit: 'cover' } }).success).toBe(true);
  });

  test('THUMBNAIL_WIDTHS is held to the same bounds at start-up', () => {
    expect(() => loadConfig({ DATA_DIR: dir, THUMBNAIL_WIDTHS: '4096,4000' })).toThrow(ConfigError);
    expect(() => loadConfig({ DATA_DIR: dir, THUMBNAIL_WIDTHS: '4096,4000' })).toThrow(/THUMBNAIL_WIDTHS/);
    expect(loadConfig({ DATA_DIR: dir, THUMBNAIL_WIDTHS: '4096,2048' }).thumbnails.widths).toEqual([2048, 4096]);
  });

  test("AVIF's encoder effort goes down as a job's pixels go up", () => {
    expect(avifEffort(640 * 1280)).toBe(4);
    expect(avifEffort(2048 * 4096)).toBeLessThan(4);
    expect(avifEffort(4096 * 8192)).toBeLessThan(avifEffort(2048 * 4096));
  });
});

describe('a 4096x60000 PNG cropped to a 4096 square', () => {
  test(
    'is cut from a bounded decode: the process grows by no more than the whole-picture thumbnail makes it',
    { timeout: 300_000 },
    async () => {
      await withRuntime('memory', {}, async (rt) => {
        // The whole picture (a 559x8192 strip) first: it sets the high-water mark of the threads and libraries.
        const inside = await rt.runner.run({
          jobId: 'inside',
          file: { path: tall },
          instructions: thumbnailsOnly({ widths: [4096] }),
        });
        expect(inside.status).toBe('completed');
        expect(inside.results.thumbnails?.map((t) => [t.width, t.height])).toEqual([[559, 8192]]);
        const before = peakRssMb();
        const cover = await rt.runner.run({
          jobId: 'cover',
          file: { path: tall },
          instructions: thumbnailsOnly({ widths: [4096], fit: 'cover' }),
        });
        const grown = peakRssMb() - before;
        expect(cover.status, JSON.stringify(cover.error)).toBe('completed');
        expect(cover.results.thumbnails?.map((t) => [t.width, t.height])).toEqual([[4096, 4096]]);
        // The whole decode is 4096 x 60000 x 3 = 737 MB (the process grew 790 MB); the bounded one 4096 x 8192 x 3.
        expect(grown).toBeLessThan(400);
      });
    },
  );

  test('its native memory counts against STEP_MEMORY_MB: over it, RESOURCE_LIMIT', { timeout: 300_000 }, async () => {
    await withRuntime('ceiling', { STEP_MEMORY_MB: '128' }, async (rt) => {
      const doc = await rt.runner.run({
        jobId: 'cover',
        file: { path: tall },
        instructions: thumbnailsOnly({ widths: [4096], fit: 'cover' }),
      });
      expect(doc.status).toBe('failed');
      expect(doc.error).toMatchObject({ code: 'RESOURCE_LIMIT', step: 'generateThumbnails' });
      expect(doc.error?.message).toMatch(/STEP_MEMORY_MB=128/);
      expect(doc.steps.generateThumbnails).toMatchObject({ status: 'failed', attempts: 1 });
      // Small thumbnails of the same picture fit.
      const small = await rt.runner.run({
        jobId: 'small',
        file: { path: tall },
        instructions: thumbnailsOnly({ widths: [256], fit: 'cover' }),
      });
      expect(small.status, JSON.stringify(small.error)).toBe('completed');
    });
  });
});

test('a square of a long, EXIF-rotated picture is upright and cut where the subject is', async () => {
  // 600x9000 upright (stored 9000x600, orientation 6): grey, with a red block of noise at 6000-6600.
  const block = await noise(600, 600, 90).tint('#ff2020').png().toBuffer();
  const upright = await sharp({ create: { width: 600, height: 9000, channels: 3, background: '#808080' } })
    .composite([{ input: block, top: 6000, left: 0 }])
    .png()
    .toBuffer();
  const file = path.join(dir, 'rotated.png');
  await sharp(await sharp(upright).rotate(270).png().toBuffer())
    .withMetadata({ orientation: 6 })
    .png()
    .toFile(file);
  await withRuntime('rotated', {}, async (rt) => {
    const doc = await rt.runner.run({
      jobId: 'rotated',
      file: { path: file },
      instructions: thumbnailsOnly({ widths: [300], fit: 'cover' }),
    });
    expect(doc.status, JSON.stringify(doc.error)).toBe('completed');
    expect(doc.results.thumbnails?.map((t) => [t.width, t.height])).toEqual([[300, 300]]);
    const [r, g] = (await sharp(path.join(dir, 'rotated', 'artifacts', 'rotated', 'thumb-300.webp')).stats()).channels;
    expect(r!.mean - g!.mean, 'red: the block, not the grey around it').toBeGreaterThan(60);
  });
});

test('a step stopped after writing some of its thumbnails leaves none of them', { timeout: 300_000 }, async () => {
  // Noise does not compress: its AVIF at quality 100 takes seconds, long after the 64-pixel one is written.
  const noisy = path.join(dir, 'noise.png');
  await noise(2048, 2048, 60).png({ compressionLevel: 1 }).toFile(noisy);
  await withRuntime('stopped', {}, async (rt) => {
    const jobDir = rt.deps.artifacts.dir('stopped');
    const files = (): string[] =>
      fs.existsSync(jobDir) ? (fs.readdirSync(jobDir, { recursive: true }) as string[]).filter(isFile) : [];
    const isFile = (p: string): boolean => fs.statSync(path.join(jobDir, p)).isFile();
    const controller = new AbortController();
    const input = {
      jobId: 'stopped',
      file: { path: noisy },
      user: null,
      fileInfo: null,
      fileType: 'image' as const,
      results: {},
      instructions: { thumbnails: { widths: [64, 2048], format: 'avif' as const, quality: 100 } },
    };
    const running = executeStep('generateThumbnails', input, rt.deps, {
      attempt: 1,
      timeoutMs: 120_000,
      signal: controller.signal,
    });
    // Stopped as soon as the first thumbnail is on disk, wherever the step keeps it.
    const deadline = Date.now() + 60_000;
    while (files().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(files().length, 'the step wrote its first thumbnail').toBeGreaterThan(0);
    controller.abort();
    // A step's failure is its outcome, not a rejection (see StepOutcome).
    expect((await running).outcome).toMatchObject({ status: 'failed', code: 'CANCELLED' });
    expect(await rt.deps.artifacts.list('stopped')).toEqual([]);
    expect(files()).toEqual([]);
  });
});
