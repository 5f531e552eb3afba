/**
 * The queued dispatcher: each step becomes a task on its policy's BullMQ queue, with a deterministic id, and the
 * graph awaits its result through one QueueEvents listener per queue (no polling, no connection per task).
 * Retries belong to BullMQ here (attempts + exponential backoff). A step that fails for good (bad input, or its
 * last attempt) completes its task with the failure as its return value (task-result.ts), read back and checked here.
 *
 * A waiter is settled by its task's events alone. Events are read from a Redis stream, so a reconnect resumes where
 * it stopped; what can still be missed (the stream trimmed past an event while the listener was away) is found by
 * re-reading the tasks of waiters older than 15 s.
 */
import { Job, Queue, QueueEvents } from 'bullmq';
import type { Config } from '../config.js';
import { QUEUE_NAMES } from '../config.js';
import type { Dispatcher, StepResult } from '../graph/dispatcher.js';
import { BUILT_IN_WORKFLOW, type Workflow } from '../graph/workflow.js';
import { CANCEL_REASON } from '../graph/runner.js';
import type { Logger } from '../lib/log.js';
import type { AnyStepName } from '../lib/types.js';
import type { StepInput } from '../nodes/index.js';
import { bullConnection } from './connection.js';
import { taskId } from './names.js';
import { decodeFailure, readTaskResult, type TaskResult } from './task-result.js';

export interface TaskData {
  step: AnyStepName;
  input: StepInput;
}

/** Finished tasks stay a day, so a resumed job finds the result of a step it already dispatched. */
export const TASK_RETENTION = { age: 24 * 3600, count: 50_000 };

interface Waiter {
  queue: string;
  since: number;
  resolve: (r: StepResult) => void;
}

/** What a step that never ran, or whose end nobody waits for any more, ends with. */
const cancelled = (message: string): StepResult => ({
  outcome: { status: 'failed', code: 'CANCELLED', message },
  attempts: 0,
});

export class QueuedDispatcher implements Dispatcher {
  private readonly queues = new Map<string, Queue>();
  private readonly events = new Map<string, QueueEvents>();
  private readonly waiters = new Map<string, Waiter>();
  private sweep: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: Config,
    private readonly redisUrl: string,
    private readonly log: Logger,
    /** How old a waiter must be before its task is re-read in case an event was missed; tests raise it. */
    private readonly recheckMs = 15_000,
    /** The steps and their queues, plugin steps included. */
    private readonly workflow: Workflow = BUILT_IN_WORKFLOW,
  ) {
    for (const name of workflow.queues(QUEUE_NAMES)) {
      const queue = new Queue(name, { connection: bullConnection(redisUrl, 'worker'), prefix: config.queuePrefix });
      queue.on('error', (err) => log.warn({ err, queue: name }, 'task queue error'));
      this.queues.set(name, queue);
      const events = new QueueEvents(name, {
        connection: bullConnection(redisUrl, 'worker'),
        prefix: config.queuePrefix,
      });
      events.on('error', (err) => log.warn({ err, queue: name }, 'queue events error'));
      events.on('completed', ({ jobId, returnvalue }) => this.completed(jobId, returnvalue as unknown));
      events.on('failed', ({ jobId }) => void this.settle(jobId));
      // The task already existed (a resumed job dispatching a step again): it may have finished long ago.
      events.on('duplicated', ({ jobId }) => void this.settle(jobId));
      this.events.set(name, events);
    }
  }

  async ready(): Promise<void> {
    await Promise.all([...this.events.values()].map((e) => e.waitUntilReady()));
    // Events can be missed across a Redis restart or an event-stream trim: re-check old waiters now and then.
    this.sweep = setInterval(() => void this.recheck(this.recheckMs), this.recheckMs);
    this.sweep.unref();
  }

  async run(step: AnyStepName, input: StepInput, { signal }: { signal?: AbortSignal }): Promise<StepResult> {
    const policy = this.workflow.policy(step);
    const id = taskId(input.jobId, step, input.generation ?? 0);
    const queue = this.queues.get(policy.queue)!;
    const result = new Promise<StepResult>((resolve) => {
      this.waiters.set(id, { queue: policy.queue, since: Date.now(), resolve });
    });
    const onAbort = (): void => void this.abort(id, signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (signal?.aborted) {
        this.waiters.delete(id);
        return cancelled('the job was cancelled');
      }
      // With the id of a task that exists (a resumed job), add() changes nothing and the result is awaited.
      await queue.add(step, { step, input } satisfies TaskData, {
        jobId: id,
        // A job's steps keep its priority, so an urgent job is not stuck behind other jobs' steps.
        ...(input.priority ? { priority: input.priority } : {}),
        attempts: policy.attempts,
        backoff: { type: 'exponential', delay: this.config.retryBackoffMs },
        removeOnComplete: TASK_RETENTION,
        removeOnFail: TASK_RETENTION,
      });
      // Settled from the task's own events: `completed` carries the result, `failed` and `duplicated` (a task that
      // existed before this add) have it read once. No read after every add: two round trips a step.
      return await result;
    } catch (err) {
      this.waiters.delete(id);
      throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.sweep);
    for (const w of this.waiters.values()) w.resolve(cancelled('the orchestrator is shutting down'));
    this.waiters.clear();
    await Promise.all([...this.events.values()].map((e) => e.close()));
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }

  private completed(id: string, returnvalue: unknown): void {
    const waiter = this.waiters.get(id);
    if (!waiter) return;
    const result = readTaskResult(returnvalue, (problem) =>
      this.log.warn({ task: id, problem }, "a step task's result read back from Redis was refused"),
    );
    this.waiters.delete(id);
    waiter.resolve(result);
  }

  /** Resolves the waiter for `id` if its task has finished for good. */
  private async settle(id: string): Promise<void> {
    const waiter = this.waiters.get(id);
    if (!waiter) return;
    const queue = this.queues.get(waiter.queue)!;
    // State first, then the job: a job read before it finished would lack its result even if it is finished now.
    const state = await queue.getJobState(id);
    if (state !== 'completed' && state !== 'failed') return;
    const job = await Job.fromId<TaskData, TaskResult>(queue, id);
    if (!job) return;
    if (state === 'completed') this.completed(id, job.returnvalue);
    // Failed by BullMQ itself (stalled too often), or by a worker of an earlier release: its failed reason's text.
    else if (this.waiters.delete(id))
      waiter.resolve({ outcome: decodeFailure(job.failedReason), attempts: Math.max(1, job.attemptsMade) });
  }

  private async recheck(olderThanMs: number): Promise<void> {
    const now = Date.now();
    for (const [id, w] of this.waiters) {
      if (now - w.since > olderThanMs) await this.settle(id).catch(() => undefined);
    }
  }

  private async abort(id: string, reason: unknown): Promise<void> {
    const waiter = this.waiters.get(id);
    if (!waiter) return;
    this.waiters.delete(id);
    if (reason === CANCEL_REASON) {
      // A task nobody has started is removed; a running one is stopped by its worker (cancel channel).
      const job = await Job.fromId(this.queues.get(waiter.queue)!, id).catch(() => undefined);
      const state = await job?.getState().catch(() => 'unknown');
      if (job && (state === 'waiting' || state === 'delayed' || state === 'prioritized'))
        await job.remove().catch(() => undefined);
      waiter.resolve(cancelled('the job was cancelled'));
    } else {
      waiter.resolve(cancelled('the orchestrator is shutting down'));
    }
  }
}
