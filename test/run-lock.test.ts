/**
 * One run of a job at a time across orchestrators: a message of a job whose run lock another orchestrator holds waits
 * in the queue, without running a step, until the lock is released; every run releases its lock when it ends.
 */
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, expect, test } from 'vitest';
import { runLockKey } from '../src/queue/names.js';
import { createProducer } from '../src/queue/producer.js';
import {
  CORPUS,
  dropPrefix,
  finishedJobs,
  ServiceProcess,
  stepRuns,
  storedJob,
  TEST_REDIS_URL,
  TestState,
  uniquePrefix,
  waitFor,
} from './helpers.js';

const prefix = uniquePrefix('run-lock');
const PHOTO = path.join(CORPUS, 'image/320x240.jpg');
let state: TestState | undefined;
let service: ServiceProcess | undefined;
const redis = new Redis(TEST_REDIS_URL);

afterAll(async () => {
  await service?.stop();
  await dropPrefix(TEST_REDIS_URL, prefix);
  await state?.drop();
  redis.disconnect();
});

test('a job another orchestrator is running waits for its lock; no step of it runs twice at once', async () => {
  state = await TestState.create('run-lock');
  service = await new ServiceProcess([], {
    ...state.env,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: prefix,
    INPUT_ROOTS: CORPUS,
  }).ready();
  // What another orchestrator's run of `held` looks like from Redis.
  await redis.set(runLockKey(prefix, 'held'), 'another-orchestrator', 'PX', 120_000);
  const producer = createProducer({ redisUrl: TEST_REDIS_URL, prefix });
  try {
    await producer.enqueueJob({ jobId: 'held', file: { path: PHOTO } });
    await producer.enqueueJob({ jobId: 'free', file: { path: PHOTO } });
  } finally {
    await producer.close();
  }
  // The orchestrator took both messages (the second was queued after the first): the free job ran, the held one did
  // not start.
  const [free] = await finishedJobs(state, ['free']);
  expect(free?.status).toBe('completed');
  expect(await stepRuns(state, 'held')).toEqual([]);
  expect((await storedJob(state, 'held'))?.status ?? 'not created').not.toMatch(/running|completed/);

  // The other run ends: this one goes on, from the queue, and completes.
  await redis.del(runLockKey(prefix, 'held'));
  const [held] = await finishedJobs(state, ['held'], 120_000);
  expect(held?.status).toBe('completed');
  expect((await stepRuns(state, 'held')).filter((r) => r.step === 'validate')).toHaveLength(1);
  // Every run lets its lock go once it has ended (the job is recorded first, so the release follows it shortly).
  await waitFor(
    'both run locks released',
    async () => (await redis.exists(runLockKey(prefix, 'held'), runLockKey(prefix, 'free'))) === 0,
    10_000,
  );
});
