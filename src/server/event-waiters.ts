/**
 * Wakes the event streams (GET /jobs/:id/events) of one API process when the job store says a job has new events:
 * one watcher per process (a LISTEN connection on PostgreSQL, one poll on SQLite), however many streams are open.
 * Streams still re-read now and then, so a missed notification delays an event, never loses it.
 */
import type { Logger } from '../lib/log.js';
import type { JobStore } from '../store/index.js';

/** How long a stream waits when the store cannot be watched (it then polls). */
const POLL_MS = 250;

export class JobEventWaiters {
  private readonly waiting = new Map<string, Set<() => void>>();
  private watching: Promise<(() => Promise<void>) | null> | null = null;

  constructor(
    private readonly store: JobStore,
    private readonly log: Logger,
  ) {}

  /**
   * Starts listening for `jobId` at once (before the caller reads its events, so nothing committed in between is
   * missed); `wait(maxMs)` resolves when new events came since, or after `maxMs`, whichever is first.
   */
  async arm(jobId: string): Promise<{ wait(maxMs: number): Promise<void>; cancel(): void }> {
    const stop = await (this.watching ??= this.store
      .watchEvents((id) => this.wake(id))
      .catch((err: unknown) => {
        this.log.warn({ err }, 'cannot watch job events; event streams poll instead');
        this.watching = null; // the next stream tries again
        return null;
      }));
    let woken = false;
    let resolveWait: (() => void) | null = null;
    const set = this.waiting.get(jobId) ?? new Set();
    this.waiting.set(jobId, set);
    const onEvent = (): void => {
      woken = true;
      resolveWait?.();
    };
    set.add(onEvent);
    const disarm = (): void => {
      set.delete(onEvent);
      if (set.size === 0 && this.waiting.get(jobId) === set) this.waiting.delete(jobId);
    };
    return {
      cancel: disarm,
      wait: (maxMs) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(finish, stop ? maxMs : Math.min(maxMs, POLL_MS));
          function finish(): void {
            clearTimeout(timer);
            disarm();
            resolve();
          }
          if (woken) finish();
          else resolveWait = finish;
        }),
    };
  }

  async close(): Promise<void> {
    const stop = await this.watching;
    this.watching = null;
    await stop?.();
    for (const set of this.waiting.values()) for (const onEvent of [...set]) onEvent();
  }

  private wake(jobId: string): void {
    for (const onEvent of [...(this.waiting.get(jobId) ?? [])]) onEvent();
  }
}
