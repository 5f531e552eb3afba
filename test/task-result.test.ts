/**
 * What a step task leaves in Redis when its step fails for good, and how the orchestrator reads it back: the failure
 * is the task's typed BullMQ return value (the task completes), with what validate learnt about the file; transient
 * trouble is retried by BullMQ and only its last attempt is returned; a return value that is not a step result
 * (forged, oversized) is refused as INTERNAL; a task failed by an earlier release (its failed reason's text) is still
 * read. Real Redis under unique prefixes, real task workers, step threads and files.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Job, Queue, UnrecoverableError, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';
import { loadWorkflow } from '../src/graph/workflow.js';
import { createLogger } from '../src/lib/log.js';
import type { AnyStepName } from '../src/lib/types.js';
import type { StepInput } from '../src/nodes/index.js';
import { bullConnection } from '../src/queue/connection.js';
import { taskId } from '../src/queue/names.js';
import { QueuedDispatcher, type TaskData } from '../src/queue/queued-dispatcher.js';
import { encodeFailure, MAX_MESSAGE_CHARS, readTaskResult } from '../src/queue/task-result.js';
import { startTaskWorkers, type TaskWorkers } from '../src/queue/task-worker.js';
import { CORPUS, dropPrefix, ROOT, stepRuns, TEST_REDIS_URL, TestState, uniquePrefix } from './helpers.js';

const log = createLogger('silent');
const LOCKED_PDF = path.join(CORPUS, 'bad/password-protected.pdf');
const PHOTO = path.join(CORPUS, 'image/320x240.jpg');
const PLUGINS = ['steps.mjs', 'retries.mjs'].map((f) => path.join(ROOT, 'test', 'fixtures', 'plugins', f));

const input = (jobId: string, file: string, extra: Partial<StepInput> = {}): StepInput => ({
  jobId,
  file: { path: file },
  user: null,
  fileInfo: null,
  fileType: null,
  results: {},
  ...extra,
});

/** A photo as validate leaves it, for the plugin steps after it. */
const photo = (jobId: string, options: Record<string, unknown>): StepInput =>
  input(jobId, PHOTO, {
    fileType: 'image',
    fileInfo: { name: '320x240.jpg', size: 1, mime: 'image/jpeg', ext: 'jpg', sha256: '0'.repeat(64) },
    instructions: { steps: options },
  });

/** The task as BullMQ keeps it in Redis: its state and the job. */
async function stored(queue: Queue, jobId: string, step: AnyStepName): Promise<{ state: string; job: Job }> {
  const id = taskId(jobId, step, 0);
  const job = await Job.fromId(queue, id);
  if (!job) throw new Error(`no task ${id} in Redis`);
  return { state: await job.getState(), job };
}

describe('a step that fails for good, run by the task workers', () => {
  const prefix = uniquePrefix('task-result');
  let state: TestState;
  let workers: TaskWorkers;
  let dispatcher: QueuedDispatcher;
  const queues = new Map<string, Queue>();

  beforeAll(async () => {
    state = await TestState.create('task-result');
    const config = loadConfig({
      ...state.env,
      QUEUE_PREFIX: prefix,
      PLUGINS: PLUGINS.join(','),
      AI_PROVIDERS: 'vision=off',
      RETRY_BACKOFF_MS: '20',
      WARM_STEP_THREADS: 'false',
      LOG_LEVEL: 'silent',
    });
    const workflow = await loadWorkflow(config);
    workers = await startTaskWorkers(config, TEST_REDIS_URL, ['light', 'image'], log, workflow);
    // Waiters are re-read only after an hour: a result the events did not deliver hangs the test.
    dispatcher = new QueuedDispatcher(config, TEST_REDIS_URL, log, 3_600_000, workflow);
    await dispatcher.ready();
    for (const name of ['light', 'image'])
      queues.set(name, new Queue(name, { connection: bullConnection(TEST_REDIS_URL, 'worker'), prefix }));
  }, 120_000);

  afterAll(async () => {
    await dispatcher?.close();
    await workers?.close(10_000);
    for (const q of queues.values()) await q.close();
    await dropPrefix(TEST_REDIS_URL, prefix);
    await state?.drop();
  }, 60_000);

  test('bad input: the task completes with the typed failure, and what validate learnt, as its return value', async () => {
    const result = await dispatcher.run('validate', input('locked', LOCKED_PDF), {});
    const bytes = fs.readFileSync(LOCKED_PDF);
    const learnt = {
      fileType: 'pdf',
      fileInfo: {
        name: 'password-protected.pdf',
        size: bytes.length,
        mime: 'application/pdf',
        ext: 'pdf',
        sha256: createHash('sha256').update(bytes).digest('hex'),
      },
    };
    const failure = {
      status: 'failed',
      code: 'ENCRYPTED',
      message: expect.stringMatching(/password/) as string,
      learnt,
    };
    expect(result).toEqual({ outcome: failure, attempts: 1 });

    const { state: taskState, job } = await stored(queues.get('light')!, 'locked', 'validate');
    expect(taskState).toBe('completed');
    expect(job.failedReason ?? '').toBe('');
    expect(job.returnvalue).toEqual({ outcome: failure, attempts: 1 });
    // The step ran once, and its failure is recorded with its code.
    expect((await stepRuns(state, 'locked')).map((r) => [r.step, r.status, r.errorCode])).toEqual([
      ['validate', 'failed', 'ENCRYPTED'],
    ]);
  }, 60_000);

  test('transient trouble is retried by BullMQ; its last attempt is returned, with its own code', async () => {
    // Fails once, then succeeds: the first failure was thrown for BullMQ to retry, not returned.
    const recovered = await dispatcher.run('flaky' as AnyStepName, photo('flaky-1', { flaky: { failures: 1 } }), {});
    expect(recovered).toMatchObject({ outcome: { status: 'succeeded', results: { flaky: { attempt: 2 } } } });
    expect(recovered.attempts).toBe(2);

    // Fails on all three attempts: the third is the task's return value.
    const result = await dispatcher.run('flaky' as AnyStepName, photo('flaky-3', { flaky: { failures: 5 } }), {});
    const failure = { status: 'failed', code: 'NOT_YET_2', message: 'not yet (attempt 3)', retryable: true };
    expect(result).toEqual({ outcome: failure, attempts: 3 });
    const { state: taskState, job } = await stored(queues.get('image')!, 'flaky-3', 'flaky' as AnyStepName);
    expect(taskState).toBe('completed');
    expect(job.returnvalue).toEqual({ outcome: failure, attempts: 3 });
    expect((await stepRuns(state, 'flaky-3')).map((r) => r.status)).toEqual(['failed', 'failed', 'failed']);
  }, 60_000);

  test('a step whose thread is terminated past its time limit, on its only attempt, is returned as TIMEOUT', async () => {
    const result = await dispatcher.run('stall' as AnyStepName, photo('stall', { stall: { hang: true } }), {});
    expect(result).toEqual({
      outcome: {
        status: 'failed',
        code: 'TIMEOUT',
        message: expect.stringMatching(/took longer/) as string,
        retryable: true,
      },
      attempts: 1,
    });
    const { state: taskState, job } = await stored(queues.get('image')!, 'stall', 'stall' as AnyStepName);
    expect(taskState).toBe('completed');
    expect(job.returnvalue).toEqual(result);
  }, 60_000);
});

describe('what Redis holds is checked, not trusted', () => {
  const prefix = uniquePrefix('task-forged');
  let dispatcher: QueuedDispatcher;
  let worker: Worker<TaskData, unknown>;
  let queue: Queue;
  const learnt = {
    fileType: 'pdf' as const,
    fileInfo: { name: 'locked.pdf', size: 1234, mime: 'application/pdf', ext: 'pdf', sha256: 'a'.repeat(64) },
  };
  const failed = (extra: Record<string, unknown>) => ({
    outcome: { status: 'failed', code: 'CORRUPT_FILE', message: 'bad bytes', ...extra },
    attempts: 1,
  });
  /** What the task of each job id ends with, as a worker of another (or an earlier) release could leave it. */
  const forged: Record<string, unknown> = {
    'bad-code': failed({ code: 'rm -rf /' }),
    'long-message': failed({ message: 'x'.repeat(MAX_MESSAGE_CHARS + 1) }),
    'bad-learnt': failed({ learnt: { ...learnt, fileInfo: { ...learnt.fileInfo, sha256: '../../etc/passwd' } } }),
    'huge-name': failed({ learnt: { ...learnt, fileInfo: { ...learnt.fileInfo, name: 'n'.repeat(100_000) } } }),
    'bad-status': { outcome: { status: 'done' }, attempts: 1 },
    'bad-attempts': { outcome: { status: 'succeeded' }, attempts: -4 },
    'not-json-object': 'CORRUPT_FILE: bad bytes',
  };

  beforeAll(async () => {
    const config = loadConfig({ QUEUE_PREFIX: prefix, LOG_LEVEL: 'silent' });
    dispatcher = new QueuedDispatcher(config, TEST_REDIS_URL, log, 3_600_000);
    await dispatcher.ready();
    queue = new Queue('light', { connection: bullConnection(TEST_REDIS_URL, 'worker'), prefix });
    worker = new Worker<TaskData, unknown>(
      'light',
      (job) => {
        const { jobId } = job.data.input;
        // A task failed as an earlier release failed it: the failure's text as the failed reason.
        if (jobId === 'old-release')
          throw new UnrecoverableError(encodeFailure({ code: 'ENCRYPTED', message: 'locked\nfor good', learnt }));
        // BullMQ's own words, as when it fails a task that stalled too often.
        if (jobId === 'bullmq-own') throw new UnrecoverableError('job stalled more than allowable limit');
        if (jobId === 'extra-keys')
          return Promise.resolve({ ...failed({ learnt, interrupted: true, stack: 'at x' }), runId: 9, more: 1 });
        return Promise.resolve(forged[jobId]);
      },
      { connection: bullConnection(TEST_REDIS_URL, 'worker'), prefix, concurrency: 4 },
    );
    await worker.waitUntilReady();
  }, 60_000);

  afterAll(async () => {
    await worker?.close();
    await dispatcher?.close();
    await queue?.close();
    await dropPrefix(TEST_REDIS_URL, prefix);
  });

  test.each(Object.keys(forged))(
    '%s: refused as INTERNAL, from the event and when read again',
    async (jobId) => {
      // The first run settles from the `completed` event, the second from the task read back (`duplicated`).
      for (let i = 0; i < 2; i++) {
        const result = await dispatcher.run('validate', input(jobId, '/nonexistent'), {});
        expect(result).toEqual({
          outcome: {
            status: 'failed',
            code: 'INTERNAL',
            message: expect.stringMatching(/^the step's result read back/) as string,
          },
          attempts: 1,
        });
        expect(result.outcome.status === 'failed' && result.outcome.message.length).toBeLessThan(1000);
      }
      // Redis does hold the forged value: the dispatcher refused it.
      const { state, job } = await stored(queue, jobId, 'validate');
      expect(state).toBe('completed');
      expect(job.returnvalue).toEqual(forged[jobId]);
    },
    30_000,
  );

  test('a well-formed result keeps the fields of a result and nothing more', async () => {
    for (let i = 0; i < 2; i++) {
      expect(await dispatcher.run('validate', input('extra-keys', '/nonexistent'), {})).toEqual({
        ...failed({ learnt }),
        runId: 9,
      });
    }
  }, 30_000);

  test('a task failed by an earlier release is read from its failed reason, learnt line and all', async () => {
    for (let i = 0; i < 2; i++) {
      expect(await dispatcher.run('validate', input('old-release', '/nonexistent'), {})).toEqual({
        outcome: { status: 'failed', code: 'ENCRYPTED', message: 'locked\nfor good', learnt },
        attempts: 1,
      });
    }
    const { state, job } = await stored(queue, 'old-release', 'validate');
    expect(state).toBe('failed');
    expect(job.failedReason).toMatch(/^ENCRYPTED: locked\nfor good\n\[learnt\] \{/);
  }, 30_000);

  test("a task BullMQ failed itself is INTERNAL, with BullMQ's words", async () => {
    expect(await dispatcher.run('validate', input('bullmq-own', '/nonexistent'), {})).toEqual({
      outcome: { status: 'failed', code: 'INTERNAL', message: 'job stalled more than allowable limit' },
      attempts: 1,
    });
  }, 30_000);

  test('the same check reads a value as the events carry it (JSON text) and as the job holds it', () => {
    const value = failed({ learnt });
    expect(readTaskResult(JSON.stringify(value))).toEqual(value);
    expect(readTaskResult(value)).toEqual(value);
    expect(readTaskResult('{not json')).toMatchObject({ outcome: { status: 'failed', code: 'INTERNAL' } });
  });
});
