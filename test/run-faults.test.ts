/**
 * Runs that cannot go on never leave a job `running` for ever. A full disk stops a run; it resumes once there is
 * room. A job whose run is gone (its message lost, or a run that gave up) is found by the sweep and resumed, or
 * cancelled on request. Reviews past REVIEW_TIMEOUT are decided oldest first, however many wait.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, afterEach, expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';
import { JobRunner } from '../src/graph/runner.js';
import { createLogger } from '../src/lib/log.js';
import { freePort } from '../src/lib/net.js';
import type { JobInput } from '../src/lib/types.js';
import { JOBS_QUEUE } from '../src/queue/names.js';
import { createProducer } from '../src/queue/producer.js';
import { timeOutReviews } from '../src/queue/sweeper.js';
import { openJobStore } from '../src/store/index.js';
import {
  CORPUS,
  dropPrefix,
  executionsNotOnce,
  finishedJobs,
  ServiceProcess,
  stepRuns,
  storedJob,
  tempDir,
  TEST_REDIS_URL,
  TestState,
  uniquePrefix,
  waitFor,
} from './helpers.js';

const prefix = uniquePrefix('run-faults');
const running: ServiceProcess[] = [];
const states: TestState[] = [];
const cleanups: (() => void)[] = [];
const PHOTO = path.join(CORPUS, 'image/320x240.jpg');

afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.stop()));
  for (const clean of cleanups.splice(0)) clean();
});

afterAll(async () => {
  await dropPrefix(TEST_REDIS_URL, prefix);
  for (const state of states) await state.drop();
});

async function newState(name: string): Promise<TestState> {
  const state = await TestState.create(name);
  states.push(state);
  return state;
}

async function service(state: TestState, env: Record<string, string> = {}): Promise<{ base: string }> {
  const port = await freePort();
  const p = new ServiceProcess([], {
    ...state.env,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: `${prefix}-${states.indexOf(state)}`,
    INPUT_ROOTS: CORPUS,
    RETRY_BACKOFF_MS: '200',
    PORT: String(port),
    ...env,
  });
  running.push(p);
  await p.ready();
  return { base: `http://127.0.0.1:${port}` };
}

/** A job the store says is running, with no message anywhere: what a lost message or a run that gave up leaves. */
async function strandedJob(state: TestState, jobId: string): Promise<void> {
  const store = await state.store();
  await store.createOrGet({ jobId, file: { path: PHOTO } });
  await store.markRunning(jobId);
}

const canMount = process.getuid?.() === 0;

test.skipIf(!canMount)('a run stopped by a full disk resumes once there is room, and the job completes', async () => {
  const state = await newState('full-disk');
  // DATA_DIR (jobs, checkpoints, uploads, artifacts) on a small disk of its own.
  const dir = state.dataDir;
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', dir]);
  cleanups.push(() => execFileSync('umount', ['-l', dir]));
  await service(state);
  // Every byte of the disk taken.
  const filler = path.join(dir, 'filler');
  const fd = fs.openSync(filler, 'w');
  try {
    const block = Buffer.alloc(64 * 1024, 1);
    for (;;) fs.writeSync(fd, block);
  } catch (err) {
    expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
  } finally {
    fs.closeSync(fd);
  }
  const producer = createProducer({ redisUrl: TEST_REDIS_URL, prefix: `${prefix}-${states.indexOf(state)}` });
  try {
    await producer.enqueueJob({ jobId: 'full-disk', file: { path: PHOTO } });
    // The run has met the full disk and is waiting to be tried again, not failed for good.
    await waitFor('the run to stop on the full disk', async () => {
      const job = await producer.queue.getJob('full-disk');
      return job && job.attemptsStarted >= 2 && (await job.getState()) === 'delayed';
    });
  } finally {
    await producer.close();
  }
  fs.rmSync(filler);
  const [doc] = await finishedJobs(state, ['full-disk'], 90_000).catch((err: Error) => {
    throw new Error(`${err.message}\n${running[0]?.log.slice(-6000)}`);
  });
  expect(doc!.status, JSON.stringify(doc!.error)).toBe('completed');
  expect(doc!.fileType).toBe('image');
  expect(executionsNotOnce([doc!], await stepRuns(state, 'full-disk'))).toEqual([]);
});

test('the sweep resumes a job left running with nothing to run it, and it completes', async () => {
  const state = await newState('stranded');
  await strandedJob(state, 'stranded');
  await service(state, { SWEEP_INTERVAL_MS: '1000' });
  const [doc] = await finishedJobs(state, ['stranded'], 60_000);
  expect(doc!.status, JSON.stringify(doc!.error)).toBe('completed');
  expect(doc!.results.thumbnails?.length).toBeGreaterThan(0);
});

test('cancelling a job left running with nothing to run it ends it cancelled', async () => {
  const state = await newState('stranded-cancel');
  // The sweep would resume it first: not in this test's lifetime.
  const { base } = await service(state, { SWEEP_INTERVAL_MS: '600000' });
  await strandedJob(state, 'stranded-cancel');
  const res = await fetch(`${base}/jobs/stranded-cancel/cancel`, { method: 'POST' });
  expect(res.status).toBe(202);
  await waitFor('the stranded job to be cancelled', async () => {
    const doc = await storedJob(state, 'stranded-cancel');
    return doc?.status === 'cancelled' && doc;
  });
  expect((await storedJob(state, 'stranded-cancel'))!.error?.code).toBe('CANCELLED');
});

/** Makes the job's checkpoint unreadable: bytes no serializer reads, where the saver of the backend keeps them. */
async function corruptCheckpoint(state: TestState, jobId: string): Promise<void> {
  if (state.backend === 'sqlite') {
    const db = new Database(path.join(state.dataDir, 'orchestrator.db'));
    try {
      const { changes } = db
        .prepare("UPDATE checkpoints SET type = 'json', checkpoint = X'00FF' WHERE thread_id = ?")
        .run(jobId);
      expect(changes).toBeGreaterThan(0);
    } finally {
      db.close();
    }
    return;
  }
  const client = new pg.Client({ connectionString: state.env.DATABASE_URL });
  await client.connect();
  try {
    const { rowCount } = await client.query(
      `UPDATE checkpoint_blobs SET type = 'json', blob = '\\x00ff'::bytea WHERE thread_id = $1`,
      [jobId],
    );
    expect(rowCount).toBeGreaterThan(0);
  } finally {
    await client.end();
  }
}

test('a run that fails for a reason of its own (a checkpoint it cannot read) ends the job failed, not running', async () => {
  const state = await newState('broken-checkpoint');
  const { base } = await service(state);
  const created = await fetch(`${base}/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ file: { path: PHOTO }, instructions: { review: { when: 'always' } } }),
  });
  const { id } = (await created.json()) as { id: string };
  await waitFor(
    'the job to wait for its review',
    async () => (await storedJob(state, id))?.status === 'awaiting_review',
  );
  await corruptCheckpoint(state, id);
  const decided = await fetch(`${base}/jobs/${id}/review`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ decision: 'approve' }),
  });
  expect(decided.status).toBe(202);
  const [doc] = await finishedJobs(state, [id], 60_000);
  expect(doc!.status).toBe('failed');
  expect(doc!.error).toMatchObject({ code: 'INTERNAL', step: null });
  expect(doc!.error?.message.length).toBeGreaterThan(0);
  // What the steps had made before the run broke is still there.
  expect(doc!.steps.generateThumbnails?.status).toBe('succeeded');
});

test('REVIEW_TIMEOUT decides the longest waiting reviews first, past any page size, and queues them', async () => {
  const dir = tempDir('review-timeout');
  const config = loadConfig({ DATA_DIR: dir, QUEUE_PREFIX: `${prefix}-rt`, REVIEW_TIMEOUT: '60000:reject' });
  const store = await openJobStore(config);
  const queue = new Queue(JOBS_QUEUE, { connection: { url: TEST_REDIS_URL }, prefix: config.queuePrefix });
  const redis = new Redis(TEST_REDIS_URL);
  try {
    const waitFor = async (jobId: string): Promise<void> => {
      const input: JobInput = { jobId, file: { path: PHOTO } };
      await store.createOrGet(input);
      await store.awaitReview(
        jobId,
        { reason: 'asked', evidence: {} },
        { fileType: null, fileInfo: null, results: {} },
      );
    };
    // 50 waiting longest, then 250 newer: more than any page the sweep reads at once.
    const old = Array.from({ length: 50 }, (_, i) => `old-${i}`);
    for (const id of old) await waitFor(id);
    const oldest = Date.now();
    await new Promise((r) => setTimeout(r, 50));
    const recent = Array.from({ length: 250 }, (_, i) => `recent-${i}`);
    for (const id of recent) await waitFor(id);

    // As if REVIEW_TIMEOUT (a minute) had passed for the old ones only.
    const parts = {
      config,
      store,
      runner: new JobRunner(null as never, null as never, store),
      queue,
      redis,
      log: createLogger('silent'),
    };
    const decided = await timeOutReviews(parts, oldest + 60_001);
    expect(decided.sort()).toEqual([...old].sort());
    for (const id of old) expect((await store.get(id))!.review).toMatchObject({ decision: 'reject' });
    for (const id of recent) expect((await store.get(id))!.review?.decision).toBeUndefined();
    // Each decided job is queued to resume with its decision.
    expect(await queue.getJob('old-0-review0')).toBeDefined();
    expect(await queue.getWaitingCount()).toBe(50);
  } finally {
    await queue.obliterate({ force: true });
    await queue.close();
    redis.disconnect();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
