/**
 * A pool of worker threads that run steps off the main event loop, so the orchestrator, lock renewals and the API
 * stay responsive while images decode. A step past its time limit, or a cancelled one, is stopped for real: its
 * thread is terminated (and any ffmpeg child with it) and a fresh thread takes its place at once, so it has booted
 * by the time the next task arrives.
 *
 * A step's time limit counts the step, never the boot of its thread: a request goes only to a thread that has said
 * it is ready (its modules loaded), and the backstop timer starts when the thread says the step began (its run
 * record written). On a loaded machine a thread can take seconds to boot; before, that time was charged to the step
 * and an attempt could be killed before it was recorded (BullMQ counted three attempts, step_runs held two).
 */
import v8 from 'node:v8';
import { Worker } from 'node:worker_threads';
import type { Config } from '../config.js';
import { failureOf, MediaError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { threadExecArgv } from '../lib/thread-flags.js';
import type { AnyStepName } from '../lib/types.js';
import type { Execute, StepRun } from '../graph/dispatcher.js';
import type { StepInput } from '../nodes/index.js';

export type ThreadMessage = ThreadRequest | { type: 'cancel'; id: number };

export interface ThreadRequest {
  type: 'run';
  id: number;
  step: AnyStepName;
  input: StepInput;
  attempt: number;
  timeoutMs: number;
  timeoutRetryable: boolean;
}

export type ThreadReply =
  | { type: 'ready'; warmed?: AnyStepName[] }
  | { type: 'started'; id: number }
  /** The step's outcome, failures included; no run id when its run record could not be written. */
  | ({ type: 'done'; id: number } & StepRun);

type StepReply = Extract<ThreadReply, { type: 'done' }>;

/** How long a thread may overrun its step's own time limit before it is terminated. */
const GRACE_MS = 2000;
/** A ready thread starts a step at once; this bounds the wait for its run record (a locked database, a stuck thread). */
const START_LIMIT_MS = 30_000;
/** A thread that has not loaded its modules by then is broken, not slow. */
const BOOT_LIMIT_MS = 120_000;

interface Slot {
  worker: Worker;
  ready: boolean;
  /** Running while the thread is idle: it retires when this fires (see StepPoolOptions.idleMs). */
  idleTimer: NodeJS.Timeout | null;
  /** Set while a step runs on this thread: receives the thread's replies and its death. */
  onReply: ((reply: StepReply | { type: 'started' } | Error) => void) | null;
}

interface Waiter {
  resolve: (slot: Slot) => void;
  reject: (err: Error) => void;
}

export interface StepPoolOptions {
  /** The thread's entry module; tests point it at a wrapper that boots slowly. */
  entry?: URL;
  /**
   * A thread idle this long retires (its memory goes back to the system), down to `keep` threads; 0 keeps every
   * thread. A retired thread's successor boots on the next request (a third of a second on a quiet machine).
   */
  idleMs?: number;
  /** Threads kept however long they idle. */
  keep?: number;
}

/**
 * V8 sizes each thread's heap for a lone process: a young generation of up to 48 MB and an old generation allowed to
 * grow to several times what is live before a full collection. With five threads whose live heap is about 20 MB
 * each, that was 60-90 MB per thread. A 6 MB young generation and 20% growth (instead of V8's dynamic factor of up to
 * 4x) brought the memory bench from 765 to 651 MB at the same throughput (docs/reliability.md, "Memory").
 */
const YOUNG_GENERATION_MB = 6;
let heapGrowthSet = false;
function limitHeapGrowth(): void {
  if (heapGrowthSet) return;
  heapGrowthSet = true;
  // Process-wide: V8 reads it at every collection, in the main thread too.
  v8.setFlagsFromString('--heap-growing-percent=20');
}

export class StepPool {
  private readonly idle: Slot[] = [];
  private readonly all = new Set<Slot>();
  private readonly waiting: Waiter[] = [];
  /** Threads alive, booting or not. */
  private live = 0;
  private nextId = 1;
  private closed = false;
  private readonly entry: URL;
  private readonly idleMs: number;
  private readonly keep: number;

  constructor(
    private readonly size: number,
    private readonly config: Config,
    private readonly log: Logger,
    opts: StepPoolOptions = {},
  ) {
    // Built (dist/*.js): the thread's body directly. From the sources (tests, Studio): an entry that registers tsx.
    this.entry =
      opts.entry ??
      new URL(import.meta.url.endsWith('.ts') ? './step-thread.mjs' : './step-thread-main.js', import.meta.url);
    this.idleMs = opts.idleMs ?? 0;
    this.keep = opts.keep ?? 0;
  }

  /**
   * Runs one execution of a step on a thread and gives its outcome: a step that fails, overruns its time limit, is
   * cancelled or takes its thread down has the `failed` one. Throws only when no thread took the step (cancelled
   * while it waited for one, the pool closing, a thread that could not boot).
   */
  async run(
    step: AnyStepName,
    input: StepInput,
    opts: { attempt: number; timeoutMs: number; timeoutRetryable?: boolean; signal?: AbortSignal },
  ): Promise<StepRun> {
    if (opts.signal?.aborted) throw new MediaError('CANCELLED', 'the job was cancelled');
    const slot = await this.acquire(opts.signal);
    const id = this.nextId++;
    return new Promise<StepRun>((resolve) => {
      let timer: NodeJS.Timeout;
      const finish = (result: StepRun | Error, keep: boolean): void => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        slot.onReply = null;
        if (keep) this.release(slot);
        else {
          // Ask the step to stop (it kills its ffmpeg child), then terminate the thread whatever it does.
          slot.worker.postMessage({ type: 'cancel', id } satisfies ThreadMessage);
          this.discard(slot);
        }
        resolve(result instanceof Error ? { outcome: failureOf(result) } : result);
      };
      const onAbort = (): void => finish(new MediaError('CANCELLED', 'the job was cancelled'), false);
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      timer = setTimeout(
        () => finish(new Error(`the step thread did not start ${step} within ${START_LIMIT_MS} ms`), false),
        START_LIMIT_MS,
      );
      slot.onReply = (reply) => {
        if (reply instanceof Error) {
          // The thread hit its heap ceiling: the step, not the process, fails; the same input would do it again.
          const outOfMemory = (reply as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY';
          const err = outOfMemory
            ? new MediaError(
                'RESOURCE_LIMIT',
                `${step} ran out of memory (its ceiling is STEP_MEMORY_MB=${this.config.stepMemoryMb} MB) and was stopped`,
              )
            : reply;
          return finish(err, false);
        }
        if (reply.type === 'started') {
          // The step's own clock starts now; the thread stops it at timeoutMs, this backstop shortly after.
          clearTimeout(timer);
          timer = setTimeout(
            () =>
              finish(
                new MediaError('TIMEOUT', `${step} took longer than ${opts.timeoutMs} ms and was stopped`, {
                  retryable: opts.timeoutRetryable ?? true,
                }),
                false,
              ),
            opts.timeoutMs + GRACE_MS,
          );
          return;
        }
        const { outcome, runId } = reply;
        // A step that timed out inside the thread may still be decoding there: replace the thread.
        finish(
          runId === undefined ? { outcome } : { outcome, runId },
          !(outcome.status === 'failed' && outcome.code === 'TIMEOUT'),
        );
      };
      const request: ThreadRequest = {
        type: 'run',
        id,
        step,
        input,
        attempt: opts.attempt,
        timeoutMs: opts.timeoutMs,
        timeoutRetryable: opts.timeoutRetryable ?? true,
      };
      slot.worker.postMessage(request satisfies ThreadMessage);
    });
  }

  /**
   * Starts one thread ahead of the first task, so the first step does not pay for loading the media libraries; the
   * thread also loads what `steps` load on their first call (pdf.js, the detector's model). Resolves when that thread
   * is ready, or has failed to boot (the next request boots another and reports the failure).
   */
  warm(steps: readonly AnyStepName[] = []): Promise<void> {
    if (this.live > 0 || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.spawn(steps, resolve));
  }

  /** Steps whose libraries and models a thread of this pool loaded ahead of them (see warm). */
  readonly warmedSteps = new Set<AnyStepName>();

  /** Threads that have booted and wait for work (for tests and metrics). */
  get idleThreads(): number {
    return this.idle.length;
  }

  /** Threads alive, booting, idle or busy (for tests and metrics). */
  get liveThreads(): number {
    return this.live;
  }

  /**
   * Shutdown: steps running now may finish, nothing new starts. Requests waiting for a thread are refused (their
   * tasks go back to the queue), and no thread is booted or kept for later.
   */
  drain(): void {
    this.closed = true;
    for (const w of this.waiting.splice(0)) w.reject(new Error('the step pool is closing'));
  }

  async destroy(): Promise<void> {
    this.closed = true;
    for (const slot of this.idle) this.stopIdleTimer(slot);
    this.idle.length = 0;
    for (const w of this.waiting.splice(0)) w.reject(new Error('the step pool is closed'));
    // Idle and booting threads; a running step has been drained or stopped by the caller before this.
    await Promise.all([...this.all].map((s) => s.worker.terminate()));
  }

  private acquire(signal?: AbortSignal): Promise<Slot> {
    if (this.closed) return Promise.reject(new Error('the step pool is closing'));
    const slot = this.idle.pop();
    if (slot) {
      this.stopIdleTimer(slot);
      return Promise.resolve(slot);
    }
    return new Promise<Slot>((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.waiting.indexOf(waiter);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(new MediaError('CANCELLED', 'the job was cancelled'));
      };
      const waiter: Waiter = {
        resolve: (s) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(s);
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
      // Grow towards the pool's size while requests wait for a thread; a booting thread serves the first waiter.
      if (this.live < this.size) this.spawn();
    });
  }

  /** A ready thread with nothing to do: to the first waiter, else to the idle list. */
  private release(slot: Slot): void {
    const next = this.waiting.shift();
    if (next) next.resolve(slot);
    else if (this.closed) {
      this.live -= 1;
      void slot.worker.terminate();
    } else {
      this.idle.push(slot);
      if (this.idleMs > 0) {
        slot.idleTimer = setTimeout(() => this.retire(slot), this.idleMs);
        slot.idleTimer.unref();
      }
    }
  }

  /** An idle thread past its idle time: terminated, unless the pool is down to the threads it keeps. */
  private retire(slot: Slot): void {
    slot.idleTimer = null;
    const i = this.idle.indexOf(slot);
    if (i < 0) return;
    if (this.live <= this.keep) return;
    this.idle.splice(i, 1);
    this.live -= 1;
    void slot.worker.terminate();
  }

  private stopIdleTimer(slot: Slot): void {
    if (slot.idleTimer) clearTimeout(slot.idleTimer);
    slot.idleTimer = null;
  }

  /** Retires a thread that ran a step it could not finish, and boots its replacement right away. */
  private discard(slot: Slot): void {
    this.live -= 1;
    setTimeout(() => void slot.worker.terminate(), 1000).unref();
    if (!this.closed) this.spawn();
  }

  private spawn(warm: readonly AnyStepName[] = [], booted?: () => void): void {
    limitHeapGrowth();
    this.live += 1;
    const worker = new Worker(this.entry, {
      workerData: { config: this.config, warm },
      // Node's own flags (tsx's loader when running from the sources), but not source maps: with them every thread
      // that loads pdf.js parsed pdf-parse's maps and held 70 MB more (docs/reliability.md, "Memory").
      execArgv: threadExecArgv(),
      // A step that would exhaust the process (pdf.js on a decompression bomb) exhausts its thread instead.
      resourceLimits: {
        maxOldGenerationSizeMb: this.config.stepMemoryMb,
        maxYoungGenerationSizeMb: YOUNG_GENERATION_MB,
      },
    });
    const slot: Slot = { worker, ready: false, idleTimer: null, onReply: null };
    this.all.add(slot);
    const bootTimer = setTimeout(() => {
      this.log.error({ limitMs: BOOT_LIMIT_MS }, 'step thread did not boot in time; terminating it');
      void worker.terminate();
    }, BOOT_LIMIT_MS);
    bootTimer.unref();
    const bootFailed = (err: Error): void => {
      clearTimeout(bootTimer);
      this.live -= 1;
      // Tell one waiting request (its task fails and is retried by the queue); the rest get a new thread.
      this.waiting.shift()?.reject(new Error(`a step thread failed to start: ${err.message}`));
      if (this.waiting.length > 0 && !this.closed) this.spawn();
    };
    worker.on('message', (reply: ThreadReply) => {
      if (reply.type === 'ready') {
        clearTimeout(bootTimer);
        for (const step of reply.warmed ?? []) this.warmedSteps.add(step);
        booted?.();
        slot.ready = true;
        this.release(slot);
      } else slot.onReply?.(reply);
    });
    worker.on('error', (err) => {
      this.log.error({ err }, 'step thread crashed');
      if (!slot.ready) return; // 'exit' follows and reports the boot failure
      slot.onReply?.(err);
    });
    worker.on('exit', (code) => {
      booted?.();
      this.all.delete(slot);
      if (!slot.ready) {
        bootFailed(new Error(`step thread exited with code ${code} while booting`));
        return;
      }
      slot.ready = false;
      this.stopIdleTimer(slot);
      const i = this.idle.indexOf(slot);
      if (i >= 0) {
        // An idle thread died (out of memory, a native crash): forget it; the next request boots another.
        this.idle.splice(i, 1);
        this.live -= 1;
      }
      slot.onReply?.(new Error(`step thread exited with code ${code}`));
    });
  }
}

/**
 * Runs each execution in one of the pool's threads, for the in-process dispatcher (`process`, Studio): the thread
 * leaves a success unrecorded (the queue records it once BullMQ holds the result), so it is recorded here.
 */
export function threadExecute(pool: StepPool): Execute {
  return async (step, input, deps, opts) => {
    const run = await pool.run(step, input, opts);
    if (run.outcome.status !== 'failed' && run.runId !== undefined)
      await deps.jobs.stepEnded(run.runId, run.outcome.status);
    return run;
  };
}
