/**
 * How many searches one process runs at once, and for how long: what a search costs grows with the index, so the
 * store runs searches apart from its other work (SQLite: threads of their own; PostgreSQL: a pool of its own), a few
 * at a time, with a few more waiting in line and the rest refused at once.
 */
import { SearchRefused } from './job-store.js';

export interface SearchLimits {
  /** Searches running at once (SEARCH_CONCURRENCY); four times as many may wait for a turn. */
  concurrency: number;
  /** A search running longer is stopped (SEARCH_TIMEOUT_MS). */
  timeoutMs: number;
}

export const DEFAULT_SEARCH_LIMITS: SearchLimits = { concurrency: 2, timeoutMs: 5000 };

/** Searches that may wait for a turn, per one that may run. */
const WAITING_PER_SLOT = 4;

export class SearchGate {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limits: SearchLimits) {}

  /**
   * A turn: at once while fewer than `concurrency` hold one, else after waiting in line; BUSY when the line is full.
   * The caller calls the function it resolves to when its work has really stopped (a stopped SQLite thread only
   * ends with its statement).
   */
  async acquire(): Promise<() => void> {
    if (this.running < this.limits.concurrency) this.running += 1;
    else if (this.waiting.length < this.limits.concurrency * WAITING_PER_SLOT)
      // The turn is handed over by release(), `running` unchanged.
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    else
      throw new SearchRefused(
        'BUSY',
        `${this.limits.concurrency} searches are running and ${this.waiting.length} waiting (SEARCH_CONCURRENCY); ` +
          'try again shortly',
      );
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.running -= 1;
    };
  }

  /** The answer to a search stopped at its time budget. */
  timeout(): SearchRefused {
    return new SearchRefused(
      'TIMEOUT',
      `the search ran past its ${this.limits.timeoutMs} ms (SEARCH_TIMEOUT_MS); narrow it with more words or longer ` +
        'prefixes',
    );
  }
}
