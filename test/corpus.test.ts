/**
 * Every file of the shared corpus through `media-orchestrator process --json`, the real CLI in its own process:
 * each must reach an outcome MANIFEST.tsv accepts, and never INTERNAL.
 */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { probeMedia } from '../src/lib/probe.js';
import { resolveToolPaths } from '../src/lib/tools.js';
import type { JobDocument } from '../src/lib/types.js';
import { acceptedOutcomes, CORPUS, manifest, outcomeOf, runCli, sha256Of, tempDir } from './helpers.js';

const rows = manifest();
const docs = new Map<string, JobDocument>();
let dataDir: string;

beforeAll(() => {
  dataDir = tempDir('corpus');
});
afterAll(() => {
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('the corpus through `process`', () => {
  test('the manifest lists files', () => {
    expect(rows.length).toBeGreaterThan(40);
  });

  // A hang guard, not a speed check (benchmarks measure speed): each file is a whole CLI run (a Node start, a step
  // thread's boot, the detector's load, for speech a recognizer run of 7 s CPU) beside whatever else the machine runs;
  // at a load average of 20 that passed 90 s. Every step inside has its own time limit, so a hang still ends.
  test.concurrent.for(rows)('$path → $expect', { timeout: 600_000 }, async (row) => {
    const res = await runCli(['process', '--json', path.join(CORPUS, row.path)], { DATA_DIR: dataDir }, 540_000);
    expect(res.stdout, res.stderr).not.toBe('');
    const doc = JSON.parse(res.stdout) as JobDocument;
    docs.set(row.path, doc);
    expect(doc.error?.code).not.toBe('INTERNAL');
    expect(acceptedOutcomes(row)).toContain(outcomeOf(doc));
    expect(res.code).toBe(doc.status === 'failed' ? 2 : 0);
    if (doc.status === 'failed') {
      expect(doc.error?.step).toBeTruthy();
      expect(doc.error?.message.length).toBeGreaterThan(5);
    } else {
      expect(doc.results.metadata?.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(Object.values(doc.steps).every((s) => s.status !== 'running' && s.status !== 'pending')).toBe(true);
    }
  });
});

describe('content of the results', () => {
  const doc = (p: string): JobDocument => {
    const d = docs.get(p);
    if (!d) throw new Error(`${p} was not processed`);
    return d;
  };
  const artifact = (d: JobDocument, url: string): string => path.join(dataDir, 'artifacts', d.id, path.basename(url));

  test('the EXIF-orientation-6 portrait has thumbnails taller than wide, as real files', async () => {
    const d = doc('image/portrait-exif-orientation-6.jpg');
    expect(d.results.metadata?.width).toBeLessThan(d.results.metadata?.height ?? 0);
    const thumbs = d.results.thumbnails ?? [];
    expect(thumbs.length).toBeGreaterThanOrEqual(2);
    for (const t of thumbs) {
      expect(t.height).toBeGreaterThan(t.width);
      const meta = await sharp(artifact(d, t.url)).metadata();
      expect([meta.width, meta.height, meta.format]).toEqual([t.width, t.height, 'webp']);
    }
    expect(d.results.placeholder?.value.length).toBeGreaterThan(10);
  });

  test('thumbnails are never enlarged and are one per distinct size', () => {
    const d = doc('image/with-alpha.png');
    const widths = (d.results.thumbnails ?? []).map((t) => t.width);
    expect(widths).toEqual([160, 256]);
  });

  test('an animated GIF gives a first-frame thumbnail and its frame count', () => {
    const d = doc('image/animated-loop-3.gif');
    expect(d.results.metadata?.animated).toBe(true);
    expect(d.results.metadata?.pages).toBeGreaterThan(1);
    expect(d.results.thumbnails?.[0]?.height).toBeGreaterThan(0);
  });

  test('camera-gps-dscn0010.jpg has GPS coordinates and camera EXIF', () => {
    const d = doc('image/camera-gps-dscn0010.jpg');
    const gps = d.results.metadata?.gps;
    expect(gps).toBeTruthy();
    // DSCN0010 was taken near Arezzo, Italy.
    expect(gps?.latitude).toBeCloseTo(43.47, 1);
    expect(gps?.longitude).toBeCloseTo(11.88, 1);
    expect(d.results.metadata?.exif?.Make).toMatch(/NIKON/i);
  });

  test('image analysis: the offline detector, and real statistics beside it', () => {
    const d = doc('image/flowers.jpeg');
    const a = d.results.analysis;
    // A pink blur: the detector runs and rightly finds nothing.
    expect(a?.provider).toBe('human');
    expect(a?.labels).toEqual([]);
    expect(a?.phash).toMatch(/^[0-9a-f]{16}$/);
    expect(a?.dominantColor).toMatch(/^#[0-9a-f]{6}$/);
    expect(a?.palette.length).toBeGreaterThan(1);
    expect(a?.sharpness).toBeGreaterThan(0);
  });

  test('tracemonkey-paper.pdf has 14 pages and its text as an artifact', () => {
    const d = doc('pdf/tracemonkey-paper.pdf');
    expect(d.results.metadata?.pages).toBe(14);
    expect(d.results.text?.pages).toBe(14);
    expect(d.results.text?.excerpt).toContain('Trace-based Just-in-Time Type Specialization');
    const text = fs.readFileSync(artifact(d, d.results.text?.url ?? ''), 'utf8');
    expect(text.length).toBeGreaterThan(80_000);
    expect(text).toContain('TraceMonkey');
    expect(d.results.summary?.text.length).toBeGreaterThan(100);
    expect(d.results.thumbnails?.length).toBeGreaterThan(0);
  });

  test('a PDF named .jpg is processed as a PDF', () => {
    expect(doc('pdf/pdf-named-as.jpg').fileType).toBe('pdf');
  });

  test('speech-testsrc.mp4 has an audio artifact', async () => {
    const d = doc('video/speech-testsrc.mp4');
    expect(d.steps.extractAudio?.status).toBe('succeeded');
    const audio = d.results.audio;
    expect(audio?.bytes).toBeGreaterThan(10_000);
    const probe = await probeMedia(resolveToolPaths().ffprobe, artifact(d, audio?.url ?? ''), { timeoutMs: 10_000 });
    expect(probe.streams).toMatchObject([{ type: 'audio', codec: 'mp3', channels: 1, sampleRate: 16000 }]);
    expect(probe.durationSec).toBeGreaterThan(10);
    expect(d.results.thumbnails?.length).toBeGreaterThan(0);
  });

  test('with-subtitles.mkv has a transcript from its subtitles, and a summary of it', () => {
    const d = doc('video/with-subtitles.mkv');
    expect(d.results.transcript?.provider).toBe('subtitles');
    expect(d.results.transcript?.text.length).toBeGreaterThan(20);
    expect(d.results.transcript?.text).not.toMatch(/-->/);
    expect(d.steps.summarize?.status).toMatch(/succeeded|skipped/);
  });

  test('silent.mp4 skips the audio chain with a reason', () => {
    const d = doc('video/silent.mp4');
    expect(d.status).toBe('completed');
    for (const step of ['extractAudio', 'transcribe', 'summarize'] as const) {
      expect(d.steps[step]?.status).toBe('skipped');
      expect(d.steps[step]?.reason).toMatch(/no audio stream/);
    }
    expect(d.steps.posterFrame?.status).toBe('succeeded');
  });

  test('a refused file that validate identified keeps its type and identity: an encrypted PDF is a PDF', () => {
    const d = doc('bad/password-protected.pdf');
    expect(d).toMatchObject({ status: 'failed', fileType: 'pdf', error: { code: 'ENCRYPTED', step: 'validate' } });
    const file = path.join(CORPUS, 'bad/password-protected.pdf');
    expect(d.file).toMatchObject({ mime: 'application/pdf', size: fs.statSync(file).size });
    expect(d.file.sha256).toBe(sha256Of(file));
    // Not identified: nothing to say.
    expect(doc('bad/text-named.png')).toMatchObject({ fileType: null, error: { code: 'UNSUPPORTED_TYPE' } });
  });

  test('rejections name the step and never leak server paths', () => {
    const d = doc('bad/dash-fragment.mp4');
    expect(d.error?.step).toBe('validate');
    expect(d.error?.message).not.toContain(CORPUS);
  });
});
