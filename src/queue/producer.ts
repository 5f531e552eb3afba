/**
 * Publishing JOB_CREATED from another Node service:
 *
 *   const producer = createProducer({ redisUrl: 'redis://127.0.0.1:6379', prefix: 'mo' });
 *   const { jobId } = await producer.enqueueJob({ file: { path: '/srv/media/in/photo.jpg' }, user: { id: 'u-42' } });
 *   await producer.close();
 *
 * A repeated jobId is the same job: BullMQ keeps one job per id, so publishing twice does nothing the second time.
 */
import { Queue } from 'bullmq';
import { ulid } from 'ulid';
import type { JobInput } from '../lib/types.js';
import { bullConnection } from './connection.js';
import { parseJobCreated } from './messages.js';
import { JOB_CREATED, JOBS_QUEUE } from './names.js';

export type NewJob = Omit<JobInput, 'jobId'> & { jobId?: string };

export interface Producer {
  enqueueJob(input: NewJob, run?: string): Promise<{ jobId: string }>;
  close(): Promise<void>;
  readonly queue: Queue;
}

/** Completed JOB_CREATED entries are kept a week: long enough to deduplicate retries from producers. */
export const JOB_RETENTION = { age: 7 * 24 * 3600, count: 100_000 };

export function createProducer(opts: { redisUrl: string; prefix: string }): Producer {
  const queue = new Queue(JOBS_QUEUE, { connection: bullConnection(opts.redisUrl, 'producer'), prefix: opts.prefix });
  queue.on('error', () => undefined); // surfaced by the failing call instead
  return {
    queue,
    enqueueJob: (input, run) => enqueueJob(queue, input, run),
    close: () => queue.close(),
  };
}

/** `run` names a later run of the same job (a retry): BullMQ keeps one entry per run, the job id stays the same. */
export async function enqueueJob(queue: Queue, input: NewJob, run?: string): Promise<{ jobId: string }> {
  const data = { ...input, jobId: input.jobId ?? ulid() };
  const parsed = parseJobCreated(data);
  if (!parsed.ok) throw new TypeError(parsed.message);
  await queue.add(JOB_CREATED, parsed.input, {
    jobId: run ? `${parsed.input.jobId}-${run}` : parsed.input.jobId,
    ...(parsed.input.priority ? { priority: parsed.input.priority } : {}),
    // One attempt: media failures are recorded in the job document; only a crash (stall) re-runs the job.
    attempts: 1,
    removeOnComplete: JOB_RETENTION,
    removeOnFail: JOB_RETENTION,
  });
  return { jobId: parsed.input.jobId };
}
