/**
 * The queued dispatcher settles a step from its task's events alone: `completed` carries the result; a task that
 * existed before the add (a resumed job dispatching the same step again) is settled from `duplicated`, finished or
 * failed, without waiting for the sweep that re-reads old waiters (set to an hour here, so a missed settle hangs the
 * test). Real Redis, a unique prefix.
 */
import { UnrecoverableError, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/lib/log.js';
import type { StepInput, StepOutcome } from '../src/nodes/index.js';
import { bullConnection } from '../src/queue/connection.js';
import { QueuedDispatcher, type TaskData } from '../src/queue/queued-dispatcher.js';
import { decodeFailure, encodeFailure, type TaskResult } from '../src/queue/task-result.js';
import { dropPrefix, TEST_REDIS_URL, uniquePrefix } from './helpers.js';

const prefix = uniquePrefix('dispatcher');
let dispatcher: QueuedDispatcher;
let worker: Worker<TaskData, TaskResult>;
/** Executions per task id: a settled duplicate must not run the task again. */
const executions = new Map<string, number>();

const input = (jobId: string): StepInput => ({
  jobId,
  file: { path: '/nonexistent' },
  user: null,
  fileInfo: null,
  fileType: null,
  results: {},
});

/** What the worker answers for task `jobId`: its id in the file's name and the run id, so no two are alike. */
const ownResult = (jobId: string, n: number, attempts = 1): TaskResult => ({
  outcome: {
    status: 'succeeded',
    fileType: 'image',
    fileInfo: {
      name: `${jobId}.jpg`,
      size: n,
      mime: 'image/jpeg',
      ext: 'jpg',
      sha256: n.toString(16).padStart(64, '0'),
    },
  },
  attempts,
  runId: 1000 + n,
});

beforeAll(async () => {
  const config = loadConfig({ QUEUE_PREFIX: prefix, RETRY_BACKOFF_MS: '10' });
  dispatcher = new QueuedDispatcher(config, TEST_REDIS_URL, createLogger('silent'), 3_600_000);
  await dispatcher.ready();
  worker = new Worker<TaskData, TaskResult>(
    'light',
    (job) => {
      executions.set(job.id!, (executions.get(job.id!) ?? 0) + 1);
      const { jobId } = job.data.input;
      // Failed as a task of an earlier release failed: UnrecoverableError with the failure's text as its reason.
      if (jobId.startsWith('bad')) return Promise.reject(new UnrecoverableError('UNSUPPORTED_TYPE: not a media file'));
      // A result of its own per task (the `many-` ones), finishing out of the order they came in.
      const many = /^many-(\d+)$/.exec(jobId);
      if (many) {
        const n = Number(many[1]);
        return new Promise((resolve) => setTimeout(() => resolve(ownResult(jobId, n, job.attemptsMade + 1)), n % 7));
      }
      const outcome: StepOutcome = { status: 'succeeded', fileType: 'image' };
      return Promise.resolve({ outcome, attempts: job.attemptsMade + 1, runId: 7 });
    },
    { connection: bullConnection(TEST_REDIS_URL, 'worker'), prefix, concurrency: 4 },
  );
  await worker.waitUntilReady();
});

afterAll(async () => {
  await worker?.close();
  await dispatcher?.close();
  await dropPrefix(TEST_REDIS_URL, prefix);
});

describe('settling from events', () => {
  test('a step resolves with its result, and dispatching it again resolves from the finished task', async () => {
    const first = await dispatcher.run('validate', input('good-1'), {});
    expect(first).toEqual({ outcome: { status: 'succeeded', fileType: 'image' }, attempts: 1, runId: 7 });
    const again = await dispatcher.run('validate', input('good-1'), {});
    expect(again).toEqual(first);
    expect([...executions].filter(([id]) => id.includes('good-1')).map(([, n]) => n)).toEqual([1]);
  }, 20_000);

  test('a task failed with a reason resolves with its code, and so does dispatching it again', async () => {
    for (let i = 0; i < 2; i++) {
      expect(await dispatcher.run('validate', input('bad-1'), {})).toEqual({
        outcome: { status: 'failed', code: 'UNSUPPORTED_TYPE', message: 'not a media file' },
        attempts: 1,
      });
    }
    expect([...executions].filter(([id]) => id.includes('bad-1')).map(([, n]) => n)).toEqual([1]);
  }, 20_000);

  test('many steps in flight at once each get their own result', async () => {
    const ids = Array.from({ length: 40 }, (_, i) => `many-${i}`);
    const results = await Promise.all(ids.map((id) => dispatcher.run('extractMetadata', input(id), {})));
    expect(results).toEqual(ids.map((id, n) => ownResult(id, n)));
  }, 20_000);
});

describe('a failure as it crosses BullMQ', () => {
  const learnt = {
    fileType: 'pdf' as const,
    fileInfo: { name: 'locked.pdf', size: 1234, mime: 'application/pdf', ext: 'pdf', sha256: 'a'.repeat(64) },
  };

  test('keeps its code, its message (lines and all) and what the step learnt', () => {
    const reason = encodeFailure({ code: 'ENCRYPTED', message: 'the PDF is encrypted\nwith a password', learnt });
    expect(decodeFailure(reason)).toEqual({
      status: 'failed',
      code: 'ENCRYPTED',
      message: 'the PDF is encrypted\nwith a password',
      learnt,
    });
    expect(decodeFailure(encodeFailure({ code: 'CORRUPT_FILE', message: 'bad' }))).toEqual({
      status: 'failed',
      code: 'CORRUPT_FILE',
      message: 'bad',
    });
  });

  test('a learnt line of the wrong shape is not believed', () => {
    const forged = [
      { ...learnt, fileType: 'exe' },
      { ...learnt, fileInfo: { ...learnt.fileInfo, sha256: '../../etc/passwd' } },
      { ...learnt, fileInfo: { ...learnt.fileInfo, size: -1.5 } },
    ];
    for (const bad of forged) {
      const decoded = decodeFailure(`ENCRYPTED: locked\n[learnt] ${JSON.stringify(bad)}`);
      expect(decoded.learnt).toBeUndefined();
    }
    expect(decodeFailure('ENCRYPTED: locked\n[learnt] {not json').learnt).toBeUndefined();
  });
});
