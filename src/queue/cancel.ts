/**
 * Cancellation across processes: a key that outlives restarts (checked before a job runs) and a pub/sub message
 * that reaches the orchestrator running the job and the workers running its steps.
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { TERMINAL_STATUSES, type JobStatus } from '../lib/types.js';
import type { JobDocuments } from '../store/index.js';
import { parseJobCreated } from './messages.js';
import { enqueueJob } from './producer.js';
import { hasLiveRun } from './sweeper.js';
import type { Logger } from '../lib/log.js';
import { createRedis } from './connection.js';
import { cancelChannel, cancelKey } from './names.js';

const REMEMBER_SECONDS = 7 * 24 * 3600;

export async function publishCancel(redis: Redis, prefix: string, jobId: string): Promise<void> {
  await redis.set(cancelKey(prefix, jobId), '1', 'EX', REMEMBER_SECONDS);
  await redis.publish(cancelChannel(prefix), jobId);
}

/** A retried job is no longer cancelled: without this, its new run would end `cancelled` at once. */
export async function clearCancel(redis: Redis, prefix: string, jobId: string): Promise<void> {
  await redis.del(cancelKey(prefix, jobId));
}

export async function isCancelled(redis: Redis, prefix: string, jobId: string): Promise<boolean> {
  return (await redis.exists(cancelKey(prefix, jobId))) === 1;
}

/** Calls `onCancel(jobId)` for every cancellation published; returns a function that unsubscribes. */
export async function subscribeCancels(
  redisUrl: string,
  prefix: string,
  log: Logger,
  onCancel: (jobId: string) => void,
): Promise<() => Promise<void>> {
  const sub = createRedis(redisUrl, 'worker');
  sub.on('error', (err) => log.warn({ err }, 'cancel subscription error'));
  sub.on('message', (_channel: string, jobId: string) => onCancel(jobId));
  await sub.subscribe(cancelChannel(prefix));
  return async () => {
    await sub.quit().catch(() => sub.disconnect());
  };
}

export interface CancelResult {
  found: boolean;
  /** The job had already ended: nothing was cancelled. */
  ended: boolean;
  /** The job's status after the request: `cancelled`, or still running until its steps stop. */
  status: JobStatus | null;
  message: string;
}

/**
 * Cancels a job wherever it is: finished (nothing to do), waiting in the jobs queue (removed there and recorded as
 * cancelled), or running (the cancel key and message reach its orchestrator and workers).
 */
export async function requestCancel(
  parts: { store: JobDocuments; queue: Queue; redis: Redis; prefix: string },
  id: string,
): Promise<CancelResult> {
  const { store, queue, redis, prefix } = parts;
  const stored = await store.get(id);
  if (stored && TERMINAL_STATUSES.includes(stored.status)) {
    return {
      found: true,
      ended: true,
      status: stored.status,
      message: `job ${id} has already ended: ${stored.status}`,
    };
  }
  // Waiting for its review, the job has no run to stop: it is queued again, and the orchestrator that takes it sees
  // the cancellation and ends it (with what its steps made, its checkpoint dropped).
  if (stored?.status === 'awaiting_review') {
    await publishCancel(redis, prefix, id);
    await queueCancelRun(store, queue, id);
    return { found: true, ended: false, status: stored.status, message: `job ${id}: cancelling its review` };
  }
  const job = await queue.getJob(id);
  const parsed = job ? parseJobCreated(job.data) : null;
  const input = parsed?.ok ? parsed.input : null;
  if (!stored && !input) return { found: false, ended: false, status: null, message: `no job ${id}` };
  await publishCancel(redis, prefix, id);
  const state = job ? await job.getState() : 'unknown';
  if (job && input && ['waiting', 'delayed', 'prioritized'].includes(state)) {
    await job.remove().catch(() => undefined);
    await store.endBeforeStart(input, 'cancelled', {
      code: 'CANCELLED',
      message: 'the job was cancelled before it started',
      step: null,
    });
    return { found: true, ended: false, status: 'cancelled', message: `job ${id} cancelled before it started` };
  }
  // A run that stopped with nothing left to resume it: a run of its own ends it.
  if (stored && !(await hasLiveRun(queue, id))) await queueCancelRun(store, queue, id);
  return {
    found: true,
    ended: false,
    status: stored?.status ?? 'running',
    message: `job ${id}: cancellation sent; it ends 'cancelled' once its running steps stop`,
  };
}

/**
 * Queues a run whose orchestrator sees the cancellation and ends the job. Its BullMQ id is new every time: one made
 * for an earlier cancellation (of a review before a retry) is kept a week, and a second one under the same id would
 * be dropped.
 */
async function queueCancelRun(store: JobDocuments, queue: Queue, id: string): Promise<void> {
  const input = await store.getInput(id);
  if (input)
    await enqueueJob(queue, input, `cancel${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`);
}
