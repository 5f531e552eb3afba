/**
 * The orchestrator: consumes JOB_CREATED from the `jobs` queue and runs each job's graph (steps dispatched to the
 * task queues). BullMQ's job lock gives every job one runner at a time; a killed orchestrator's job stalls, is picked
 * up again, and resumes from its checkpoint. On shutdown, running jobs are drained back to the queue.
 */
import path from 'node:path';
import { DelayedError, Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../config.js';
import type { StepEvents } from '../graph/graph.js';
import { CANCEL_REASON, DRAIN_REASON, JobIdConflict, type JobRunner } from '../graph/runner.js';
import { describeError } from '../lib/errors.js';
import { isInside, pinFile } from '../lib/files.js';
import { isDiskFull, isTransient } from '../lib/transient.js';
import type { Logger } from '../lib/log.js';
import {
  TERMINAL_STATUSES,
  type ErrorCode,
  type JobDocument,
  type JobInput,
  type AnyStepName,
  type StepStatus,
} from '../lib/types.js';
import type { JobStore } from '../store/index.js';
import { isCancelled, subscribeCancels } from './cancel.js';
import { bullConnection, createRedis } from './connection.js';
import { parseJobCreated } from './messages.js';
import { JOB_ID_PATTERN, JOBS_QUEUE, resumesKey, stoppedKey } from './names.js';
import { encodeFailure } from './task-result.js';
import { takeRunLock } from './run-lock.js';
import { startSweeper } from './sweeper.js';
import { startWebhooks } from './webhooks.js';

/**
 * How many times a run stopped by trouble of the moment is tried again (after RETRY_BACKOFF_MS, doubling up to
 * MAX_RUN_DELAY_MS: about five minutes in all with the defaults) before the sweep takes it over.
 */
const RUN_ATTEMPTS = 10;
const MAX_RUN_DELAY_MS = 60_000;
/** How long a message of a job that another orchestrator is running waits in the queue before it looks again. */
const RUN_LOCK_RETRY_MS = 5_000;

export interface OrchestratorParts {
  config: Config;
  store: JobStore;
  runner: JobRunner;
  log: Logger;
  onStep(listener: StepEvents['stepChanged']): () => void;
}

export interface Orchestrator {
  close(timeoutMs: number): Promise<void>;
}

interface Active {
  controller: AbortController;
  job: Job;
  /** Every step's latest status, published as the job's progress (see publishProgress). */
  steps: Partial<Record<AnyStepName, StepStatus>>;
  /** A progress update is on its way to Redis; `stale` says the steps changed since it was sent. */
  sending: boolean;
  stale: boolean;
}

/** A job's progress as the CLI's `submit --wait` reads it: each step's latest status. */
export interface JobProgress {
  steps: Partial<Record<AnyStepName, StepStatus>>;
}

/**
 * Publishes a job's step statuses as its BullMQ progress, at most one update in flight per job: transitions that
 * come while one is sent are folded into the next. Every update carries all the steps, so a folded one loses
 * nothing a reader needs; no-op steps change faster than Redis answers, and two writes a step were most of the
 * Redis traffic an orchestrator made.
 */
function publishProgress(a: Active): void {
  if (a.sending) {
    a.stale = true;
    return;
  }
  a.sending = true;
  a.stale = false;
  const progress: JobProgress = { steps: { ...a.steps } };
  a.job
    .updateProgress(progress)
    .catch(() => undefined)
    .finally(() => {
      a.sending = false;
      if (a.stale) publishProgress(a);
    });
}

export async function startOrchestrator(parts: OrchestratorParts, redisUrl: string): Promise<Orchestrator> {
  const { config, store, runner, log } = parts;
  const redis: Redis = createRedis(redisUrl, 'worker');
  redis.on('error', (err) => log.warn({ err }, 'orchestrator redis error'));
  const active = new Map<string, Active>();
  /** The run of each job this process is handling, from its intake to its end. */
  const runs = new Map<string, Promise<JobDocument>>();
  const allowedRoots = [...config.inputRoots, config.uploadsDir];

  const stopListening = parts.onStep((jobId, step, record) => {
    // Live progress for `submit --wait` and any QueueEvents listener; losing one update is harmless.
    const a = active.get(jobId);
    if (!a) return;
    a.steps[step] = record.status;
    publishProgress(a);
  });

  const reject = (input: JobInput, code: ErrorCode, message: string): Promise<JobDocument> =>
    store.endBeforeStart(input, 'failed', { code, message, step: null });

  const webhooks = await startWebhooks(config, redisUrl, store, log);
  const notify = async (input: JobInput, doc: JobDocument): Promise<JobDocument> => {
    // Only a job that has ended is announced: one waiting for its review is announced when it ends.
    if (!TERMINAL_STATUSES.includes(doc.status)) return doc;
    await redis.del(resumesKey(config.queuePrefix, doc.id), stoppedKey(config.queuePrefix, doc.id));
    if (!input.notifyUrl) return doc;
    const run = (await store.getRetry(input.jobId))?.generation ?? 0;
    await webhooks.enqueue(doc.id, input.notifyUrl, run);
    return (await store.get(doc.id)) ?? doc;
  };

  // Set when close() begins. BullMQ can hand over a job fetched just before its close took effect: that job goes
  // straight back to the queue rather than starting work nobody will wait for.
  let draining = false;
  const backToQueue = async (job: Job, token: string): Promise<never> => {
    await job.moveToDelayed(Date.now(), token);
    throw new DelayedError();
  };

  const process = async (job: Job, token?: string): Promise<JobDocument> => {
    if (draining && token) return backToQueue(job, token);
    const parsed = parseJobCreated(job.data);
    if (!parsed.ok) {
      const data = (job.data ?? {}) as { jobId?: unknown; file?: { path?: unknown } };
      const jobId = typeof data.jobId === 'string' && JOB_ID_PATTERN.test(data.jobId) ? data.jobId : job.id;
      // A record for it, unless the id names an existing job: a bad message must not end someone else's job.
      if (jobId && JOB_ID_PATTERN.test(jobId) && !(await store.get(jobId))) {
        const path = typeof data.file?.path === 'string' ? data.file.path.slice(0, 4096) : '(none)';
        await reject({ jobId, file: { path } }, 'INVALID_INPUT', parsed.message);
      }
      log.warn({ bullJobId: job.id, message: parsed.message }, 'malformed JOB_CREATED message');
      throw new UnrecoverableError(encodeFailure({ code: 'INVALID_INPUT', message: parsed.message }));
    }
    const input = parsed.input;
    // The same message under another BullMQ id (BullMQ drops only a repeated id) while this process runs the job:
    // one run per thread, so it waits for that run to settle and is then handled as any repeat would be.
    for (let other = runs.get(input.jobId); other; other = runs.get(input.jobId)) await other.catch(() => undefined);
    if (draining && token) return backToQueue(job, token);
    // And one run at a time across processes: while another orchestrator runs the job, this message waits its turn.
    const lock = await takeRunLock(redis, config.queuePrefix, input.jobId, config.lockDurationMs);
    if (!lock) {
      log.info({ jobId: input.jobId, bullJobId: job.id }, 'another run of this job is under way; this one waits');
      if (!token) throw new Error(`another run of job ${input.jobId} is under way`);
      await job.moveToDelayed(Date.now() + RUN_LOCK_RETRY_MS, token);
      throw new DelayedError();
    }
    const run = runJob(job, input, token, lock.lost).catch((err: unknown) => {
      if (err instanceof DelayedError || err instanceof UnrecoverableError) throw err;
      return stopped(job, input, err, token);
    });
    runs.set(input.jobId, run);
    try {
      return await run;
    } finally {
      if (runs.get(input.jobId) === run) runs.delete(input.jobId);
      await lock.release();
    }
  };

  const runJob = async (
    job: Job,
    input: JobInput,
    token: string | undefined,
    lockLost: AbortSignal,
  ): Promise<JobDocument> => {
    // Before anything touches the job's folder: an id already used for another file is refused, and that job kept.
    let claimed: JobDocument;
    try {
      claimed = await runner.claim(input);
    } catch (err) {
      if (!(err instanceof JobIdConflict)) throw err;
      log.warn({ jobId: input.jobId, bullJobId: job.id }, err.message);
      throw new UnrecoverableError(encodeFailure({ code: 'INVALID_INPUT', message: err.message }));
    }
    // Uploads are already in our folder; a producer's path is pinned: every step reads the inode checked here. The
    // job keeps the path the producer named (a repeated message is recognised by it); the steps read the pinned one.
    let readFrom: string | undefined;
    if (!(await isInside(config.uploadsDir, input.file.path))) {
      const pinned = await pinFile(input.file.path, allowedRoots, path.join(config.uploadsDir, input.jobId));
      if (!pinned.ok) return notify(input, await reject(input, 'INVALID_INPUT', pinned.reason));
      readFrom = pinned.path;
    }
    if (await isCancelled(redis, config.queuePrefix, input.jobId)) return notify(input, await runner.cancel(input));

    const controller = new AbortController();
    active.set(input.jobId, { controller, job, steps: {}, sending: false, stale: false });
    if (draining) controller.abort(DRAIN_REASON);
    // Frozen past its run lock, which another run has taken since: this one stops and goes back to the queue.
    const onLockLost = (): void => {
      log.warn({ jobId: input.jobId }, 'the run lock was taken by another run; this run stops');
      controller.abort(DRAIN_REASON);
    };
    lockLost.addEventListener('abort', onLockLost, { once: true });
    try {
      // A retry's state comes from the store, where only the retry route puts it.
      const retry = (await store.getRetry(input.jobId)) ?? undefined;
      return await notify(input, await runner.run(input, { signal: controller.signal, retry, readFrom, claimed }));
    } catch (err) {
      // Back to the queue without using an attempt; its checkpoint makes the next run resume.
      if (controller.signal.reason === DRAIN_REASON && token) return backToQueue(job, token);
      throw err;
    } finally {
      lockLost.removeEventListener('abort', onLockLost);
      active.delete(input.jobId);
    }
  };

  /**
   * A run that failed outside its steps. Trouble of the moment (the database or Redis out of reach, a full disk) is
   * tried again later from the checkpoint, RUN_ATTEMPTS times with a growing delay; a full disk that outlasts them
   * ends the job `failed` with RESOURCE_LIMIT. Anything else is a bug: the job ends `failed` with INTERNAL and what
   * its finished steps found. Whatever cannot even be recorded (the store is unreachable) is left to the sweep.
   */
  const stopped = async (job: Job, input: JobInput, err: unknown, token: string | undefined): Promise<JobDocument> => {
    const { message } = describeError(err);
    if (isTransient(err)) {
      const attempt = Math.max(1, job.attemptsStarted);
      if (attempt < RUN_ATTEMPTS && token) {
        const delay = Math.min(MAX_RUN_DELAY_MS, config.retryBackoffMs * 2 ** (attempt - 1));
        log.warn(
          { jobId: input.jobId, attempt, delay, err: message },
          'run stopped by trouble of the moment; resumes later',
        );
        await job.moveToDelayed(Date.now() + delay, token);
        throw new DelayedError();
      }
      if (!isDiskFull(err)) throw err;
      log.error({ jobId: input.jobId, err: message }, 'the disk stayed full; the job fails');
      return notify(
        input,
        await runner.fail(input, { code: 'RESOURCE_LIMIT', message: `the disk is full: ${message}`, step: null }),
      );
    }
    log.error({ jobId: input.jobId, err }, 'run failed outside its steps');
    return notify(input, await runner.fail(input, { code: 'INTERNAL', message, step: null }));
  };

  const worker = new Worker(JOBS_QUEUE, process, {
    connection: bullConnection(redisUrl, 'worker'),
    prefix: config.queuePrefix,
    concurrency: config.jobConcurrency,
    lockDuration: config.lockDurationMs,
    stalledInterval: config.stalledIntervalMs,
    // A killed orchestrator stalls its jobs; they are resumed, not failed, unless it keeps happening.
    maxStalledCount: 10,
  });
  worker.on('error', (err) => log.warn({ err }, 'orchestrator worker error'));
  worker.on('failed', (job, err) => {
    if (!job || err instanceof DelayedError) return;
    log.error({ jobId: job.id, err: err.message }, 'job failed in the orchestrator');
    // Why this run stopped, for the sweep that resumes the job (and gives up on it in the end).
    const jobId = (job.data as { jobId?: unknown } | undefined)?.jobId;
    if (typeof jobId === 'string' && JOB_ID_PATTERN.test(jobId))
      redis
        .set(stoppedKey(config.queuePrefix, jobId), err.message.slice(0, 2000), 'EX', 7 * 24 * 3600)
        .catch(() => undefined);
  });

  const jobsQueue = new Queue(JOBS_QUEUE, {
    connection: bullConnection(redisUrl, 'worker'),
    prefix: config.queuePrefix,
  });
  jobsQueue.on('error', (err) => log.warn({ err }, 'jobs queue error'));
  const stopSweeping = startSweeper({ config, store, runner, queue: jobsQueue, redis, log });
  const unsubscribe = await subscribeCancels(redisUrl, config.queuePrefix, log, (jobId) => {
    active.get(jobId)?.controller.abort(CANCEL_REASON);
  });
  await worker.waitUntilReady();
  log.info({ concurrency: config.jobConcurrency }, 'orchestrator ready');

  return {
    async close(timeoutMs) {
      draining = true;
      const closing = worker.close();
      for (const { controller } of active.values()) controller.abort(DRAIN_REASON);
      const timedOut = await Promise.race([
        closing.then(() => false),
        new Promise<boolean>((r) => setTimeout(() => r(true), timeoutMs).unref()),
      ]);
      if (timedOut) await worker.close(true);
      stopListening();
      stopSweeping();
      await jobsQueue.close();
      await unsubscribe();
      await webhooks.close();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
