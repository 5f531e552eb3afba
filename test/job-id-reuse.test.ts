/**
 * A job id chosen by a producer names one file. The same id with the same file is the same job (a repeated command,
 * a redelivered message); the same id with another file is refused, and the existing job, its upload and its
 * artifacts stay as they were.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Job, Queue } from 'bullmq';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { bullConnection } from '../src/queue/connection.js';
import { createProducer } from '../src/queue/producer.js';
import { JOBS_QUEUE } from '../src/queue/names.js';
import {
  CORPUS,
  dropPrefix,
  finishedJobs,
  runCli,
  ServiceProcess,
  storedJob,
  tempDir,
  TEST_REDIS_URL,
  TestState,
  uniquePrefix,
  waitFor,
} from './helpers.js';

const prefix = uniquePrefix('reuse');
let state: TestState;
let inputRoot: string;
let elsewhere: string;
const services: ServiceProcess[] = [];

beforeAll(async () => {
  state = await TestState.create('reuse');
  inputRoot = tempDir('reuse-in');
  elsewhere = tempDir('reuse-out');
});

afterAll(async () => {
  for (const s of services) await s.stop();
  await dropPrefix(TEST_REDIS_URL, prefix);
  await state?.drop();
  for (const d of [inputRoot, elsewhere]) fs.rmSync(d, { recursive: true, force: true });
});

const sha256 = (file: string): string => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** Two different photos with the same name, in two folders. */
function twoPhotos(root: string): { first: string; second: string } {
  const first = path.join(root, 'a', 'photo.jpg');
  const second = path.join(root, 'b', 'photo.jpg');
  for (const f of [first, second]) fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.copyFileSync(path.join(CORPUS, 'image/320x240.jpg'), first);
  fs.copyFileSync(path.join(CORPUS, 'image/camera-canon-ixus.jpg'), second);
  return { first, second };
}

test('process: the same --job-id with another file exits 2 and leaves the first job as it was', async () => {
  const env = { ...state.env, DISABLED_STEPS: 'analyzeImage' };
  const photo = path.join(CORPUS, 'image/320x240.jpg');
  const pdf = path.join(CORPUS, 'pdf/three-pages.pdf');

  const first = await runCli(['process', '--json', '--job-id', 'inline-1', photo], env);
  expect(first.code, first.stderr).toBe(0);
  const doc = JSON.parse(first.stdout) as { fileType: string; createdAt: string; file: { sha256: string } };
  expect(doc.fileType).toBe('image');

  const other = await runCli(['process', '--json', '--job-id', 'inline-1', pdf], env);
  expect(other.code, other.stderr).toBe(2);
  expect(other.stderr).toContain('job id inline-1 is already used by a job for another file');
  expect(other.stdout).toBe('');
  const kept = await storedJob(state, 'inline-1');
  expect(kept).toMatchObject({ fileType: 'image', status: 'completed', createdAt: doc.createdAt });
  expect(kept!.file.sha256).toBe(sha256(photo));

  // The same file again is the same job: its document, not a new run.
  const again = await runCli(['process', '--json', '--job-id', 'inline-1', photo], env);
  expect(again.code, again.stderr).toBe(0);
  expect(JSON.parse(again.stdout)).toMatchObject({ fileType: 'image', createdAt: doc.createdAt });
});

test('submit: a --job-id already queued for another file exits 2 and writes over nothing', async () => {
  const env = { ...state.env, REDIS_URL: TEST_REDIS_URL, QUEUE_PREFIX: `${prefix}-submit`, INPUT_ROOTS: inputRoot };
  const inRoot = twoPhotos(inputRoot);
  // Outside INPUT_ROOTS the CLI copies the file into the job's upload folder: the second must not replace the first.
  const copied = twoPhotos(elsewhere);
  try {
    for (const [id, { first, second }] of [
      ['submit-in-root', inRoot],
      ['submit-copied', copied],
    ] as const) {
      const ok = await runCli(['submit', '--json', '--job-id', id, first], env);
      expect(ok.code, ok.stderr).toBe(0);
      const refused = await runCli(['submit', '--json', '--job-id', id, second], env);
      expect(refused.code, refused.stderr).toBe(2);
      expect(refused.stderr).toContain(`job id ${id} is already used by a job for another file`);
      // The same file again is accepted (BullMQ keeps the one message).
      const same = await runCli(['submit', '--json', '--job-id', id, first], env);
      expect(same.code, same.stderr).toBe(0);
    }
    const queue = new Queue(JOBS_QUEUE, {
      connection: bullConnection(TEST_REDIS_URL, 'producer'),
      prefix: `${prefix}-submit`,
    });
    try {
      const pathOf = async (id: string): Promise<string> =>
        (await Job.fromId<{ file: { path: string } }>(queue, id))!.data.file.path;
      expect(await pathOf('submit-in-root')).toBe(fs.realpathSync(inRoot.first));
      const staged = await pathOf('submit-copied');
      expect(staged).toBe(path.join(state.dataDir, 'uploads', 'submit-copied', 'photo.jpg'));
      expect(sha256(staged)).toBe(sha256(copied.first));
    } finally {
      await queue.close();
    }
  } finally {
    await dropPrefix(TEST_REDIS_URL, `${prefix}-submit`);
  }
});

/** The JOB_CREATED message `id` once it is in `state`. */
function messageIn(queue: Queue, id: string, state: 'failed' | 'completed'): Promise<Job> {
  // The state first, then the job: a job read before it ended has no result or reason in it.
  return waitFor(`message ${id} ${state}`, async () =>
    (await queue.getJobState(id)) === state ? Job.fromId(queue, id) : null,
  );
}

test(
  'JOB_CREATED: an id reused for another file of the same name fails that message and keeps the job',
  { timeout: 180_000 },
  async () => {
    const { first, second } = twoPhotos(inputRoot);
    const env = {
      ...state.env,
      REDIS_URL: TEST_REDIS_URL,
      QUEUE_PREFIX: prefix,
      INPUT_ROOTS: inputRoot,
      DISABLED_STEPS: 'analyzeImage',
    };
    const service = new ServiceProcess([], env);
    services.push(service);
    await service.ready();

    const producer = createProducer({ redisUrl: TEST_REDIS_URL, prefix });
    try {
      await producer.enqueueJob({ jobId: 'reused', file: { path: first } });
      const [done] = await finishedJobs(state, ['reused']);
      expect(done!.status).toBe('completed');
      expect(done!.file.sha256).toBe(sha256(first));
      const pinned = path.join(state.dataDir, 'uploads', 'reused', 'photo.jpg');
      expect(sha256(pinned)).toBe(sha256(first));

      // BullMQ drops a second message while it keeps the first; once that one is gone, the id comes back.
      await messageIn(producer.queue, 'reused', 'completed');
      expect(await producer.queue.remove('reused')).toBe(1);
      await producer.enqueueJob({ jobId: 'reused', file: { path: second } });
      const failed = await messageIn(producer.queue, 'reused', 'failed');
      expect(failed.failedReason).toMatch(/^INVALID_INPUT: job id reused is already used by a job for another file/);
      const kept = await storedJob(state, 'reused');
      expect(kept).toMatchObject({ status: 'completed', finishedAt: done!.finishedAt, updatedAt: done!.updatedAt });
      expect(kept!.file.sha256).toBe(sha256(first));
      // The first job's pinned copy was not replaced by the second file.
      expect(sha256(pinned)).toBe(sha256(first));

      // The same file under that id again is the same job.
      expect(await producer.queue.remove('reused')).toBe(1);
      await producer.enqueueJob({ jobId: 'reused', file: { path: first } });
      const again = await messageIn(producer.queue, 'reused', 'completed');
      expect((again.returnvalue as { finishedAt: string }).finishedAt).toBe(done!.finishedAt);
    } finally {
      await producer.close();
    }
  },
);
