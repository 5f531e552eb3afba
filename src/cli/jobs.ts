/** `status` and `cancel` from the command line: the job store first, then the jobs queue for jobs not yet started. */
import fs from 'node:fs';
import { Queue } from 'bullmq';
import type { Config } from '../config.js';
import { newJobDocument } from '../lib/job-document.js';
import type { JobDocument, JobInput } from '../lib/types.js';
import { TERMINAL_STATUSES } from '../lib/types.js';
import { publishCancel } from '../queue/cancel.js';
import { bullConnection, createRedis } from '../queue/connection.js';
import { parseJobCreated } from '../queue/messages.js';
import { JOBS_QUEUE } from '../queue/names.js';
import { findRedis } from '../queue/redis-server.js';
import { openDatabase, SqliteJobStore } from '../store/sqlite-job-store.js';

function withStore<T>(config: Config, fn: (store: SqliteJobStore) => T, create = false): T | null {
  if (!fs.existsSync(config.dbPath) && !create) return null;
  fs.mkdirSync(config.dataDir, { recursive: true });
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

export async function cancelJob(
  config: Config,
  redisUrl: string,
  id: string,
): Promise<{ found: boolean; message: string }> {
  const stored = withStore(config, (s) => s.get(id));
  if (stored && TERMINAL_STATUSES.includes(stored.status)) {
    return { found: true, message: `job ${id} has already ended: ${stored.status}` };
  }
  const redis = createRedis(redisUrl, 'producer');
  const queue = new Queue(JOBS_QUEUE, { connection: bullConnection(redisUrl, 'producer'), prefix: config.queuePrefix });
  try {
    const queued = await queuedInput(queue, id);
    if (!stored && !queued) return { found: false, message: `no job ${id}` };
    // Remembered in Redis (a job picked up later is cancelled before it runs) and broadcast to running processes.
    await publishCancel(redis, config.queuePrefix, id);
    if (queued && ['waiting', 'delayed', 'prioritized'].includes(queued.state)) {
      const job = await queue.getJob(id);
      await job?.remove().catch(() => undefined);
      withStore(
        config,
        (s) => {
          s.createOrGet(queued.input);
          void s.saveFinished({
            jobId: id,
            status: 'cancelled',
            fileType: null,
            file: queued.input.file,
            fileInfo: null,
            user: queued.input.user ?? null,
            steps: {},
            results: {},
            error: { code: 'CANCELLED', message: 'the job was cancelled before it started', step: null },
          });
        },
        true,
      );
      return { found: true, message: `job ${id} cancelled before it started` };
    }
    return { found: true, message: `job ${id}: cancellation sent; it ends 'cancelled' once its running steps stop` };
  } finally {
    await queue.close();
    await redis.quit().catch(() => redis.disconnect());
  }
}
