/**
 * Wakes the event streams (GET /jobs/:id/events) of one API process when the job store says a job has new events:
 * one watcher per process (a LISTEN connection on PostgreSQL, one poll on SQLite), however many streams are open.
 * Streams still re-read now and then, so a missed notification delays an event, never loses it.
 */
import type { Logger } from '../lib/log.js';
import type { JobEventFeed } from '../store/index.js';

/** How long a stream waits when the store cannot be watched (it then polls). */
const POLL_MS = 250;
/** After a failed attempt to watch, streams poll this long before the next attempt. */
const RETRY_WATCH_MS = 10_000;

export interface Armed {
  /** Resolves when new events came since arming, on close, or after `maxMs`, whichever is first. */
  wait(maxMs: number): Promise<void>;
  /** Ends the wait now (the client went away). */
  wake(): void;
  cancel(): void;
}

export class JobEventWaiters {
  private readonly waiting = new Map<string, Set<() => void>>();
  private watching: Promise<(() => Promise<void>) | null> | null = null;
  private retryAt = 0;
  private closed = false;

  constructor(
    private readonly store: JobEventFeed,
    private readonly log: Logger,
  ) {}

  /** True once close() began: streams end (their clients reconnect to a process that stays). */
  get closing(): boolean {
    return this.closed;
  }

  /**
   * Starts listening for `jobId` at once, before the caller reads its events, so nothing committed in between is
   * missed.
   */
  async arm(jobId: string): Promise<Armed> {
    const watching = this.closed ? null : await this.watch();
    let woken = this.closed;
    let resolveWait: (() => void) | null = null;
    const set = this.waiting.get(jobId) ?? new Set();
    this.waiting.set(jobId, set);
    const onEvent = (): void => {
      woken = true;
      resolveWait?.();
    };
    set.add(onEvent);
    const cancel = (): void => {
      set.delete(onEvent);
      if (set.size === 0 && this.waiting.get(jobId) === set) this.waiting.delete(jobId);
    };
    return {
      cancel,
      wake: onEvent,
      wait: (maxMs) =>
        new Promise<void>((resolve) => {
          const finish = (): void => {
            clearTimeout(timer);
            cancel();
            resolve();
          };
          const timer = setTimeout(finish, Math.max(0, watching ? maxMs : Math.min(maxMs, POLL_MS)));
          if (woken) finish();
          else resolveWait = finish;
        }),
    };
  }

  /** Stops watching and wakes every stream, which then ends. */
  async close(): Promise<void> {
    this.closed = true;
    this.wake(null);
    const stop = await this.watching;
    this.watching = null;
    await stop?.();
  }

  /** The store's watcher, started on first use; null (streams poll) while it cannot be started. */
  private watch(): Promise<(() => Promise<void>) | null> {
    if (!this.watching && Date.now() >= this.retryAt) {
      this.watching = this.store
        .watchEvents((id) => this.wake(id))
        .catch((err: unknown) => {
          this.log.warn({ err }, `cannot watch job events; event streams poll, next attempt in ${RETRY_WATCH_MS} ms`);
          this.retryAt = Date.now() + RETRY_WATCH_MS;
          this.watching = null;
          return null;
        });
    }
    return this.watching ?? Promise.resolve(null);
  }

  /** Wakes the streams of `jobId`, or all of them for null (anything may have changed). */
  private wake(jobId: string | null): void {
    const sets = jobId === null ? [...this.waiting.values()] : [this.waiting.get(jobId) ?? new Set<() => void>()];
    for (const set of sets) for (const onEvent of [...set]) onEvent();
  }
}
