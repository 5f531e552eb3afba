/**
 * A pool of worker threads that run steps off the main event loop, so the orchestrator, lock renewals and the API
 * stay responsive while images decode. A step past its time limit, or a cancelled one, is stopped for real: its
 * thread is terminated (and any ffmpeg child with it) and a fresh thread takes its place.
 */
import { Worker } from 'node:worker_threads';
import type { Config } from '../config.js';
import { MediaError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import type { ErrorCode, StepName } from '../lib/types.js';
import type { StepInput, StepOutcome } from '../nodes/index.js';

export type ThreadMessage = ThreadRequest | { type: 'cancel'; id: number };

export interface ThreadRequest {
  type: 'run';
  id: number;
  step: StepName;
  input: StepInput;
  attempt: number;
  timeoutMs: number;
}

export type ThreadReply =
  | { id: number; ok: true; outcome: StepOutcome; runId: number }
  | { id: number; ok: false; code: ErrorCode; message: string; retryable: boolean };

/** How long a thread may overrun its step's own time limit before it is terminated. */
const GRACE_MS = 2000;

interface Slot {
  worker: Worker;
  settle: ((reply: ThreadReply | Error) => void) | null;
}

export class StepPool {
  private readonly idle: Slot[] = [];
  private readonly waiting: ((slot: Slot) => void)[] = [];
  private live = 0;
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly size: number,
    private readonly config: Config,
    private readonly log: Logger,
  ) {}

  async run(
    step: StepName,
    input: StepInput,
    opts: { attempt: number; timeoutMs: number; signal?: AbortSignal },
  ): Promise<{ outcome: StepOutcome; runId: number }> {
    if (opts.signal?.aborted) throw new MediaError('CANCELLED', 'the job was cancelled');
    const slot = await this.acquire();
    const id = this.nextId++;
    return new Promise<{ outcome: StepOutcome; runId: number }>((resolve, reject) => {
      const finish = (result: { outcome: StepOutcome; runId: number } | Error, keep: boolean): void => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        slot.settle = null;
        if (keep) this.release(slot);
        else {
          // Ask the step to stop (it kills its ffmpeg child), then terminate the thread whatever it does.
          slot.worker.postMessage({ type: 'cancel', id } satisfies ThreadMessage);
          this.discard(slot);
        }
        if (result instanceof Error) reject(result);
        else resolve(result);
      };
      const onAbort = (): void => finish(new MediaError('CANCELLED', 'the job was cancelled'), false);
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const timer = setTimeout(
        () =>
          finish(
            new MediaError('TIMEOUT', `${step} took longer than ${opts.timeoutMs} ms and was stopped`, {
              retryable: true,
            }),
            false,
          ),
        opts.timeoutMs + GRACE_MS,
      );
      slot.settle = (reply) => {
        if (reply instanceof Error) return finish(reply, false);
        if (reply.ok) return finish({ outcome: reply.outcome, runId: reply.runId }, true);
        // A step that timed out inside the thread may still be decoding there: replace the thread.
        finish(new MediaError(reply.code, reply.message, { retryable: reply.retryable }), reply.code !== 'TIMEOUT');
      };
      const request: ThreadRequest = { type: 'run', id, step, input, attempt: opts.attempt, timeoutMs: opts.timeoutMs };
      slot.worker.postMessage(request satisfies ThreadMessage);
    });
  }

  /** Starts one thread ahead of the first task, so the first step does not pay for loading the media libraries. */
  warm(): void {
    if (this.live === 0 && !this.closed) this.idle.push(this.spawn());
  }

  async destroy(): Promise<void> {
    this.closed = true;
    const all = [...this.idle];
    this.idle.length = 0;
    await Promise.all(all.map((s) => s.worker.terminate()));
  }

  private acquire(): Promise<Slot> {
    const slot = this.idle.pop();
    if (slot) return Promise.resolve(slot);
    if (this.live < this.size) return Promise.resolve(this.spawn());
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(slot: Slot): void {
    const next = this.waiting.shift();
    if (next) next(slot);
    else if (this.closed) void slot.worker.terminate();
    else this.idle.push(slot);
  }

  private discard(slot: Slot): void {
    this.live -= 1;
    setTimeout(() => void slot.worker.terminate(), 1000).unref();
    const next = this.waiting.shift();
    if (next && !this.closed) next(this.spawn());
  }

  private spawn(): Slot {
    this.live += 1;
    const worker = new Worker(new URL('./step-thread.mjs', import.meta.url), {
      workerData: { config: this.config },
      // The thread runs TypeScript through tsx like the main thread; keep Node's own flags.
      execArgv: process.execArgv,
    });
    const slot: Slot = { worker, settle: null };
    worker.on('message', (reply: ThreadReply) => slot.settle?.(reply));
    worker.on('error', (err) => {
      this.log.error({ err }, 'step thread crashed');
      slot.settle?.(err);
    });
    worker.on('exit', (code) => {
      if (slot.settle) slot.settle(new Error(`step thread exited with code ${code}`));
    });
    return slot;
  }
}
