/**
 * The artifact store, the only way steps read and write a job's files: names cannot leave the job's folder, a tool's
 * output becomes an artifact only when the tool succeeds, and a missing artifact reads as null (not as empty text).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { ArtifactStore } from '../src/lib/artifacts.js';
import { tempDir } from './helpers.js';

const root = tempDir('artifacts');
const store = new ArtifactStore(root);
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

test('a tool writes through produce; a failed run leaves neither the artifact nor its partial file', async () => {
  const ref = await store.produce('job-1', 'audio.mp3', (out) => fs.promises.writeFile(out, 'abc'));
  expect(ref).toEqual({ name: 'audio.mp3', url: '/jobs/job-1/artifacts/audio.mp3', bytes: 3 });
  expect(fs.readFileSync(path.join(root, 'job-1', 'audio.mp3'), 'utf8')).toBe('abc');

  const failing = store.produce('job-2', 'audio.mp3', async (out) => {
    await fs.promises.writeFile(out, 'half of it');
    throw new Error('ffmpeg died');
  });
  await expect(failing).rejects.toThrow('ffmpeg died');
  expect(fs.readdirSync(path.join(root, 'job-2'))).toEqual([]);
  // A failed re-run keeps the artifact an earlier run made.
  await expect(store.produce('job-1', 'audio.mp3', () => Promise.reject(new Error('no')))).rejects.toThrow('no');
  expect(fs.readdirSync(path.join(root, 'job-1'))).toEqual(['audio.mp3']);
});

test('text reads back; a missing artifact is null; names and job ids cannot leave the folder', async () => {
  await store.write('job-3', 'transcript.txt', 'hello');
  expect(await store.readText('job-3', 'transcript.txt')).toBe('hello');
  expect(await store.readText('job-3', 'segments.json')).toBeNull();
  expect(await store.localPath('job-3', 'transcript.txt')).toBe(path.join(root, 'job-3', 'transcript.txt'));
  for (const bad of ['../x', '..', '.hidden', 'a/b', '']) {
    await expect(store.readText('job-3', bad)).rejects.toThrow(/unsafe artifact name/);
    await expect(store.produce('job-3', bad, () => Promise.resolve())).rejects.toThrow(/unsafe artifact name/);
  }
  await expect(store.readText('../job-3', 'transcript.txt')).rejects.toThrow(/unsafe artifact name/);
});

test("a step's artifacts appear when it succeeds; a discarded step's are gone, and it can write no more", async () => {
  const listed = async (job: string): Promise<string[]> => (await store.list(job)).map((a) => a.name);
  const ok = store.stage('job-4');
  const ref = await ok.write('job-4', 'thumb-64.webp', 'small');
  expect(ref).toEqual({ name: 'thumb-64.webp', url: '/jobs/job-4/artifacts/thumb-64.webp', bytes: 5 });
  await ok.produce('job-4', 'audio.mp3', (out) => fs.promises.writeFile(out, 'abc'));
  // Held back: neither listed nor at its path until the step has succeeded.
  expect(await listed('job-4')).toEqual([]);
  expect(fs.existsSync(store.path('job-4', 'thumb-64.webp'))).toBe(false);
  await ok.commit();
  expect(await listed('job-4')).toEqual(['audio.mp3', 'thumb-64.webp']);
  expect(fs.readdirSync(store.dir('job-4')).sort()).toEqual(['audio.mp3', 'thumb-64.webp']);

  const failed = store.stage('job-4');
  await failed.write('job-4', 'thumb-64.webp', 'replaced');
  await failed.write('job-4', 'thumb-128.webp', 'partial');
  await failed.discard();
  await expect(failed.write('job-4', 'thumb-256.webp', 'late')).rejects.toThrow(/discarded/);
  // The earlier success stays as it was; nothing of the failed run is left, not even its folder.
  expect(await listed('job-4')).toEqual(['audio.mp3', 'thumb-64.webp']);
  expect(await store.readText('job-4', 'thumb-64.webp')).toBe('small');
  expect(fs.readdirSync(store.dir('job-4')).sort()).toEqual(['audio.mp3', 'thumb-64.webp']);
  await expect(store.stage('job-4').write('job-5', 'a.txt', 'x')).rejects.toThrow(/job-4/);
});
