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
