/**
 * Duplicates through real jobs (inline runs of the graph, real sharp): the later job lists the earlier one with the
 * same bytes (exact) and a resized, re-encoded copy lists both (near), within one owner only; both ways through
 * JobStore.duplicates. DUPLICATES=skip ends a job whose bytes a completed job of its owner had at once: no step runs,
 * and it shares that job's results.
 */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/lib/log.js';
import { createRuntime } from '../src/runtime.js';
import { NEAR_DUPLICATE_DISTANCE } from '../src/store/duplicates.js';
import { CORPUS, tempDir } from './helpers.js';

const dir = tempDir('duplicates');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const photo = path.join(CORPUS, 'image/camera-gps-dscn0010.jpg');

/** The photo's bytes under another name, and a copy of it halved and re-encoded at quality 60. */
async function copies(where: string): Promise<{ same: string; smaller: string }> {
  fs.mkdirSync(where, { recursive: true });
  const same = path.join(where, 'same.jpg');
  fs.copyFileSync(photo, same);
  const smaller = path.join(where, 'smaller.jpg');
  const { width } = await sharp(photo).metadata();
  await sharp(photo)
    .resize(Math.round(width / 2))
    .jpeg({ quality: 60 })
    .toFile(smaller);
  return { same, smaller };
}

const runtimeFor = (name: string, env: Record<string, string> = {}) =>
  createRuntime(
    loadConfig({ DATA_DIR: path.join(dir, name), DISABLED_STEPS: 'analyzeImage', ...env }),
    createLogger('silent'),
  );

describe('duplicates', () => {
  test('mark: the later job lists the same bytes as exact and a smaller copy as near, within its owner', async () => {
    const { same, smaller } = await copies(path.join(dir, 'mark-files'));
    const runtime = await runtimeFor('mark');
    try {
      const me = { id: 'u-1' };
      const first = await runtime.runner.run({ jobId: 'first', file: { path: photo }, user: me });
      expect(first.status).toBe('completed');
      expect(first.results.perceptualHash?.value).toMatch(/^[0-9a-f]{16}$/);
      expect(first.results.duplicates).toBeUndefined();

      const again = await runtime.runner.run({ jobId: 'again', file: { path: same }, user: me });
      expect(again.results.duplicates).toEqual([{ jobId: 'first', kind: 'exact', distance: 0 }]);
      expect(again.duplicateOf).toBeUndefined();
      expect(again.steps.generateThumbnails?.status).toBe('succeeded');

      const copy = await runtime.runner.run({ jobId: 'copy', file: { path: smaller }, user: me });
      expect(copy.results.duplicates?.map((d) => [d.jobId, d.kind])).toEqual([
        ['first', 'near'],
        ['again', 'near'],
      ]);
      expect(copy.results.duplicates![0]!.distance).toBeLessThanOrEqual(NEAR_DUPLICATE_DISTANCE);

      // Another owner's job with the same bytes is nobody's duplicate.
      const theirs = await runtime.runner.run({ jobId: 'theirs', file: { path: photo }, user: { id: 'u-2' } });
      expect(theirs.results.duplicates).toBeUndefined();
      const nobody = await runtime.runner.run({ jobId: 'nobody', file: { path: photo } });
      expect(nobody.results.duplicates).toBeUndefined();

      expect((await runtime.store.duplicates('first')).map((d) => [d.jobId, d.kind, d.relation])).toEqual([
        ['again', 'exact', 'later'],
        ['copy', 'near', 'later'],
      ]);
      expect((await runtime.store.duplicates('copy')).map((d) => [d.jobId, d.relation])).toEqual([
        ['first', 'earlier'],
        ['again', 'earlier'],
      ]);
    } finally {
      await runtime.close();
    }
  }, 120_000);

  test('skip: a job with the bytes of a completed job of its owner ends at once, sharing its results; no step runs', async () => {
    const { same, smaller } = await copies(path.join(dir, 'skip-files'));
    const runtime = await runtimeFor('skip', { DUPLICATES: 'skip' });
    try {
      const first = await runtime.runner.run({ jobId: 'first', file: { path: photo } });
      expect(first.status).toBe('completed');

      const again = await runtime.runner.run({ jobId: 'again', file: { path: same, name: 'holiday.jpg' } });
      expect(again).toMatchObject({ status: 'completed', duplicateOf: 'first', steps: {}, error: null });
      expect(await runtime.store.runs('again')).toEqual([]);
      expect(again.file).toMatchObject({ name: 'holiday.jpg', sha256: first.file.sha256, size: first.file.size });
      // The results are the first job's, by reference: its thumbnails, at its URLs.
      expect(again.results.thumbnails).toEqual(first.results.thumbnails);
      expect(again.results.thumbnails![0]!.url).toMatch(/^\/jobs\/first\//);
      expect(again.results.duplicates).toEqual([{ jobId: 'first', kind: 'exact', distance: 0 }]);
      // A third copy names the original, not the copy it matched first.
      const third = await runtime.runner.run({ jobId: 'third', file: { path: same } });
      expect(third.duplicateOf).toBe('first');

      // Only exact duplicates are skipped: a smaller copy is processed, and lists what it is near.
      const copy = await runtime.runner.run({ jobId: 'copy', file: { path: smaller } });
      expect(copy.duplicateOf).toBeUndefined();
      expect((await runtime.store.runs('copy')).map((r) => r.step)).toContain('generateThumbnails');
      expect(copy.results.duplicates?.[0]).toMatchObject({ jobId: 'first', kind: 'near' });
      // And another owner's job with the same bytes runs.
      const theirs = await runtime.runner.run({ jobId: 'theirs', file: { path: same }, user: { id: 'u-2' } });
      expect(theirs.duplicateOf).toBeUndefined();
      expect((await runtime.store.runs('theirs')).length).toBeGreaterThan(0);
    } finally {
      await runtime.close();
    }
  }, 120_000);
});
