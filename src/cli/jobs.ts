/**
 * `status` and `cancel` from the command line: the job store first, then the jobs queue for jobs not yet started.
 * The queue's modules (BullMQ, ioredis, the message schema) load only when the store does not have the answer, so
 * `status` of a known job starts in a fraction of the time.
 */
import type { Queue } from 'bullmq';
import type { Config } from '../config.js';
import { newJobDocument } from '../lib/job-document.js';
import type { JobDocument, JobInput, ReviewDecision } from '../lib/types.js';
import type { CancelResult } from '../queue/cancel.js';
import { reviewedLine } from './format.js';
import { JOBS_QUEUE } from '../queue/names.js';
import { openJobStore, storeExists, type JobStore } from '../store/index.js';

/** The jobs queue of `config` on `redisUrl`, with BullMQ loaded now. */
async function jobsQueue(config: Config, redisUrl: string): Promise<Queue> {
  const [{ Queue }, { bullConnection }] = await Promise.all([import('bullmq'), import('../queue/connection.js')]);
  return new Queue(JOBS_QUEUE, { connection: bullConnection(redisUrl, 'producer'), prefix: config.queuePrefix });
}

async function withStore<T>(config: Config, fn: (store: JobStore) => Promise<T>): Promise<T | null> {
  if (!storeExists(config)) return null;
  const store = await openJobStore(config);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

async function queuedInput(queue: Queue, id: string): Promise<{ input: JobInput; state: string } | null> {
  const job = await queue.getJob(id);
  if (!job) return null;
  const { parseJobCreated } = await import('../queue/messages.js');
  const parsed = parseJobCreated(job.data);
  return parsed.ok ? { input: parsed.input, state: await job.getState() } : null;
}

export async function findJob(config: Config, id: string): Promise<JobDocument | null> {
  const stored = await withStore(config, (s) => s.get(id));
  if (stored) return stored;
  const { findRedis } = await import('../queue/redis-server.js');
  const redisUrl = await findRedis(config).catch(() => null);
  if (!redisUrl) return null;
  const queue = await jobsQueue(config, redisUrl);
  try {
    const queued = await queuedInput(queue, id);
    return queued ? newJobDocument(queued.input) : null;
  } finally {
    await queue.close();
  }
}

export async function cancelJob(config: Config, redisUrl: string, id: string): Promise<CancelResult> {
  const [{ requestCancel }, { createRedis }] = await Promise.all([
    import('../queue/cancel.js'),
    import('../queue/connection.js'),
  ]);
  const redis = createRedis(redisUrl, 'producer');
  const queue = await jobsQueue(config, redisUrl);
  const store = await openJobStore(config);
  try {
    return await requestCancel({ store, queue, redis, prefix: config.queuePrefix }, id);
  } finally {
    await store.close();
    await queue.close();
    await redis.quit().catch(() => redis.disconnect());
  }
}

/**
 * `retry`, `delete` and `review` on this terminal's own store and Redis: the same JobService the API's routes call.
 * Resolves to the line to print and whether it was done (a refusal, such as a job that is still running, is not).
 */
export async function jobCommand(
  config: Config,
  redisUrl: string,
  command: 'retry' | 'delete' | 'review',
  id: string,
  decision?: ReviewDecision,
): Promise<{ ok: boolean; message: string }> {
  const [{ JobService, JobServiceError }, { createProducer }, { createRedis }, { openStores }, { ArtifactStore }] =
    await Promise.all([
      import('../service/job-service.js'),
      import('../queue/producer.js'),
      import('../queue/connection.js'),
      import('../store/index.js'),
      import('../lib/artifacts.js'),
    ]);
  const stores = await openStores(config);
  // As the API's: commands wait for the connection (a producer's fails at once while it is still connecting).
  const redis = createRedis(redisUrl, 'worker');
  const producer = createProducer({ redisUrl, prefix: config.queuePrefix });
  const jobs = new JobService({
    config,
    store: stores.store,
    checkpointer: stores.checkpointer,
    artifacts: new ArtifactStore(config.artifactsDir),
    producer,
    redis,
  });
  try {
    if (command === 'retry') {
      await jobs.retry(id);
      return { ok: true, message: `job ${id}: retrying its failed steps` };
    }
    if (command === 'review') {
      if (!decision) throw new Error('review needs a decision');
      await jobs.review(id, decision);
      return { ok: true, message: reviewedLine(id, decision) };
    }
    await jobs.delete(id);
    return { ok: true, message: `job ${id}: deleted` };
  } catch (err) {
    if (err instanceof JobServiceError && err.code !== 'UNAVAILABLE') return { ok: false, message: err.message };
    throw err;
  } finally {
    await producer.close();
    await redis.quit().catch(() => redis.disconnect());
    await stores.close();
  }
}
