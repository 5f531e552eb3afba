/**
 * Task workers: one BullMQ Worker per task queue, each feeding a pool of step threads. A step that fails for good
 * (bad input, cancellation, or transient trouble on the task's last attempt) completes its task with the failure as
 * its return value; transient trouble before the last attempt throws, so BullMQ retries it with backoff.
 */
import { WaitingError, Worker, type Job } from 'bullmq';
import { queueConcurrency, type Config } from '../config.js';
import { STEP_POLICY, stepTimeout } from '../graph/policy.js';
import { BUILT_IN_WORKFLOW, type Workflow } from '../graph/workflow.js';
import type { StepRun } from '../graph/dispatcher.js';
import { failureOf } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import type { AnyStepName, StepName } from '../lib/types.js';
import { subscribeCancels } from './cancel.js';
import { bullConnection } from './connection.js';
import type { TaskData } from './queued-dispatcher.js';
import { encodeFailure, finalFailure, type TaskResult } from './task-result.js';
import { openJobStore } from '../store/index.js';
import { StepPool } from './step-pool.js';

/** How long a step stopped by an outside signal waits to learn whether this process is shutting down. */
const INTERRUPT_GRACE_MS = 3000;

export interface TaskWorkers {
  /** Stops taking tasks and lets running ones finish for up to `timeoutMs`, then stops them (they run again later). */
  close(timeoutMs: number): Promise<void>;
}

/** The pools of step threads a task worker process runs its steps on. */
export type PoolName = 'light' | 'shared' | 'ai' | 'vision';

/**
 * Which pool runs `step` taken from `queue`:
 * - light: every job starts there (short steps), on threads of its own with one kept booted, so a new job never waits
 *   behind an hour of audio extraction;
 * - shared: media work and offline models are CPU-bound, so the image, video, document (and offline ai) queues share
 *   STEP_THREADS threads; memory and CPU follow the machine, not the number of queues. Their queues still take up to
 *   their concurrency in tasks; a task waits for a thread before its clock starts;
 * - ai: remote models mostly wait on HTTP, so the ai queue keeps as many threads as its concurrency;
 * - vision: the offline detector holds about 200 MB in every thread that loads it, so only VISION_THREADS threads
 *   (half the cores) run it (PocketSphinx runs as a process and the extractive summarizer is small: they stay on
 *   shared).
 */
export function poolFor(config: Config, queue: string, step: AnyStepName): PoolName {
  if (queue === 'light') return 'light';
  if (queue !== 'ai') return 'shared';
  if (step === 'analyzeImage' && config.ai.providers.vision === 'local') return 'vision';
  return Object.values(config.ai.providers).includes('openai') ? 'ai' : 'shared';
}

export async function startTaskWorkers(
  config: Config,
  redisUrl: string,
  queues: readonly string[],
  log: Logger,
  /** The steps these queues carry, plugin steps included. */
  workflow: Workflow = BUILT_IN_WORKFLOW,
): Promise<TaskWorkers> {
  const store = await openJobStore(config);
  const workers: Worker[] = [];
  /** The BullMQ ids of the step tasks running here, by media job id: what a cancellation of the job stops. */
  const running = new Map<string, Set<string>>();
  let shuttingDown = false;
  const backToWait = async (job: Job, token: string | undefined): Promise<never> => {
    await job.moveToWait(token);
    throw new WaitingError();
  };
  let shutdownBegan = (): void => undefined;
  const shutdown = new Promise<void>((resolve) => (shutdownBegan = resolve));
  const idleMs = config.stepThreadIdleMs;
  const pools = new Map<PoolName, StepPool>();
  const poolSizes: Record<PoolName, number> = {
    light: config.workerConcurrency.light,
    shared: config.stepThreads,
    ai: config.workerConcurrency.ai,
    vision: config.visionThreads,
  };
  const pool = (name: PoolName): StepPool => {
    let p = pools.get(name);
    if (!p) {
      p = new StepPool(poolSizes[name], config, log.child({ pool: name }), { idleMs, keep: name === 'light' ? 1 : 0 });
      pools.set(name, p);
    }
    return p;
  };
  // Every pool these queues use gets one thread before the first task is taken, with what its steps load on their
  // first call (pdf.js, the detector's model) loaded: the first job after start-up does not pay for them. Threads of
  // pools other than light still retire after STEP_THREAD_IDLE_MS without work (docs/benchmarks.md, "First jobs").
  // With WARM_STEP_THREADS=false, only light gets its thread, with nothing loaded ahead.
  const warm = new Map<PoolName, StepName[]>(queues.includes('light') ? [['light', []]] : []);
  for (const [step, policy] of Object.entries(STEP_POLICY) as [StepName, (typeof STEP_POLICY)[StepName]][]) {
    if (!config.warmStepThreads || !queues.includes(policy.queue) || config.disabledSteps.includes(step)) continue;
    const name = poolFor(config, policy.queue, step);
    warm.set(name, [...(warm.get(name) ?? []), step]);
  }
  const warmStarted = performance.now();
  await Promise.all([...warm].map(([name, steps]) => pool(name).warm(steps)));
  log.info({ pools: [...warm.keys()], ms: Math.round(performance.now() - warmStarted) }, 'step threads warmed');
  for (const name of queues) {
    const concurrency = queueConcurrency(config, name);
    const worker = new Worker<TaskData, TaskResult>(
      name,
      async (job, token, signal) => {
        // Fetched as the worker began to close: back to the queue untouched.
        if (shuttingDown) return backToWait(job, token);
        const { step, input } = job.data;
        const attempt = job.attemptsMade + 1;
        const mine = running.get(input.jobId) ?? new Set<string>();
        running.set(input.jobId, mine.add(job.id!));
        try {
          let run: StepRun;
          try {
            // A step this process does not know (PLUGINS differs between machines) fails like a bug: it is one.
            const policy = workflow.policy(step);
            const timeoutMs = stepTimeout(step, config.stepTimeouts, input.results.metadata?.durationSec, policy);
            const timeoutRetryable = policy.retryTimeout;
            run = await pool(poolFor(config, name, step)).run(step, input, {
              attempt,
              timeoutMs,
              timeoutRetryable,
              signal,
            });
          } catch (err) {
            // No thread took the step (an unknown step, cancelled while it waited, the pool closing, a thread that
            // could not boot).
            run = { outcome: failureOf(err) };
          }
          const { outcome } = run;
          if (outcome.status !== 'failed') return { ...run, attempts: attempt };
          // A stop signal sent to the whole process group reaches ffmpeg first, and this process a moment later: give
          // the shutdown that moment, so the step goes back to the queue instead of using an attempt.
          if (outcome.interrupted && !shuttingDown)
            await Promise.race([shutdown, new Promise((r) => setTimeout(r, INTERRUPT_GRACE_MS).unref())]);
          // Stopped by a shutdown, not by its own fault: back to the queue, no attempt used.
          if (shuttingDown) return backToWait(job, token);
          const { code, message, retryable } = outcome;
          log.warn({ jobId: input.jobId, step, attempt, code, message, retryable }, 'task failed');
          // Another attempt can help and BullMQ has one left: it retries with its backoff.
          if (retryable && attempt < (job.opts.attempts ?? 1)) throw new Error(encodeFailure(outcome));
          return finalFailure(outcome, attempt);
        } finally {
          mine.delete(job.id!);
          if (mine.size === 0) running.delete(input.jobId);
        }
      },
      {
        connection: bullConnection(redisUrl, 'worker'),
        prefix: config.queuePrefix,
        concurrency,
        lockDuration: config.lockDurationMs,
        stalledInterval: config.stalledIntervalMs,
        maxStalledCount: 3,
      },
    );
    worker.on('error', (err) => log.warn({ err, queue: name }, 'task worker error'));
    // Recorded only now that BullMQ holds the result: a `succeeded` execution is never run again. A failed one
    // was recorded as it failed.
    worker.on('completed', (job, { outcome, runId }) => {
      if (outcome.status === 'failed' || runId === undefined) return;
      store.stepEnded(runId, outcome.status).catch((err: unknown) => log.warn({ err }, 'step run not recorded'));
    });
    workers.push(worker);
  }
  const unsubscribe = await subscribeCancels(redisUrl, config.queuePrefix, log, (jobId) => {
    // Whatever run of the job they belong to (a retry's tasks have ids of their own).
    for (const id of running.get(jobId) ?? []) for (const worker of workers) worker.cancelJob(id, 'cancelled');
  });
  await Promise.all(workers.map((w) => w.waitUntilReady()));
  log.info(
    { queues, concurrency: queues.map((q) => `${q}=${queueConcurrency(config, q)}`).join(',') },
    'task workers ready',
  );

  return {
    async close(timeoutMs) {
      shuttingDown = true;
      shutdownBegan();
      for (const p of pools.values()) p.drain();
      await unsubscribe();
      const graceful = Promise.all(workers.map((w) => w.close()));
      const timedOut = await Promise.race([
        graceful.then(() => false),
        new Promise<boolean>((r) => setTimeout(() => r(true), timeoutMs).unref()),
      ]);
      if (timedOut) {
        log.warn('running tasks did not finish in time; stopping them (they go back to the queue)');
        for (const w of workers) w.cancelAllJobs('shutdown');
        await graceful;
      }
      await Promise.all([...pools.values()].map((p) => p.destroy()));
      await store.close();
    },
  };
}
