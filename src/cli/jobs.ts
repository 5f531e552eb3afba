/** `status` and `cancel` from the command line: the job store first, then the jobs queue for jobs not yet started. */
import { Queue } from 'bullmq';
import type { Config } from '../config.js';
import { newJobDocument } from '../lib/job-document.js';
import type { JobDocument, JobInput } from '../lib/types.js';
import { requestCancel, type CancelResult } from '../queue/cancel.js';
import { bullConnection, createRedis } from '../queue/connection.js';
import { parseJobCreated } from '../queue/messages.js';
import { JOBS_QUEUE } from '../queue/names.js';
import { findRedis } from '../queue/redis-server.js';
import { openJobStore, storeExists, type JobStore } from '../store/index.js';

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
  const parsed = parseJobCreated(job.data);
  return parsed.ok ? { input: parsed.input, state: await job.getState() } : null;
}

export async function findJob(config: Config, id: string): Promise<JobDocument | null> {
  const stored = await withStore(config, (s) => s.get(id));
  if (stored) return stored;
  const redisUrl = await findRedis(config).catch(() => null);
  if (!redisUrl) return null;
  const queue = new Queue(JOBS_QUEUE, { connection: bullConnection(redisUrl, 'producer'), prefix: config.queuePrefix });
  try {
    const queued = await queuedInput(queue, id);
    return queued ? newJobDocument(queued.input) : null;
  } finally {
    await queue.close();
  }
}

export async function cancelJob(config: Config, redisUrl: string, id: string): Promise<CancelResult> {
  const redis = createRedis(redisUrl, 'producer');
  const queue = new Queue(JOBS_QUEUE, { connection: bullConnection(redisUrl, 'producer'), prefix: config.queuePrefix });
  const store = await openJobStore(config);
  try {
    return await requestCancel({ store, queue, redis, prefix: config.queuePrefix }, id);
  } finally {
    await store.close();
    await queue.close();
    await redis.quit().catch(() => redis.disconnect());
  }
}
