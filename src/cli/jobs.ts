/** `status` and `cancel` from the command line: the job store first, then the jobs queue for jobs not yet started. */
import fs from 'node:fs';
import { Queue } from 'bullmq';
import type { Config } from '../config.js';
import { newJobDocument } from '../lib/job-document.js';
import type { JobDocument, JobInput } from '../lib/types.js';
import { requestCancel, type CancelResult } from '../queue/cancel.js';
import { bullConnection, createRedis } from '../queue/connection.js';
import { parseJobCreated } from '../queue/messages.js';
import { JOBS_QUEUE } from '../queue/names.js';
import { findRedis } from '../queue/redis-server.js';
import { openDatabase, SqliteJobStore } from '../store/sqlite-job-store.js';

function withStore<T>(config: Config, fn: (store: SqliteJobStore) => T): T | null {
  if (!fs.existsSync(config.dbPath)) return null;
  const db = openDatabase(config.dbPath);
  try {
    return fn(new SqliteJobStore(db));
  } finally {
    db.close();
  }
}

async function queuedInput(queue: Queue, id: string): Promise<{ input: JobInput; state: string } | null> {
  const job = await queue.getJob(id);
  if (!job) return null;
  const parsed = parseJobCreated(job.data);
  return parsed.ok ? { input: parsed.input, state: await job.getState() } : null;
}

export async function findJob(config: Config, id: string): Promise<JobDocument | null> {
  const stored = withStore(config, (s) => s.get(id));
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
  fs.mkdirSync(config.dataDir, { recursive: true });
  const db = openDatabase(config.dbPath);
  try {
    return await requestCancel({ store: new SqliteJobStore(db), queue, redis, prefix: config.queuePrefix }, id);
  } finally {
    db.close();
    await queue.close();
    await redis.quit().catch(() => redis.disconnect());
  }
}
