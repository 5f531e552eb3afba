/**
 * SQLite searches off the main thread. better-sqlite3 runs a statement to its end on the thread that called it: a
 * broad search on the event loop held the API, the orchestrator and its lock renewals for seconds. Here each search
 * runs in a thread of its own with a read-only connection to the same file, at most SearchLimits.concurrency at once
 * (SearchGate: a few more wait, the rest are refused). A search past its time budget is answered TIMEOUT at once and
 * its thread terminated; SQLite cannot be interrupted from outside, so the thread stops at the end of the statement it
 * is in, and its turn comes back only then.
 */
import { Worker } from 'node:worker_threads';
import { SearchRefused, type SearchPage } from '../job-store.js';
import { SearchGate, type SearchLimits } from '../search-gate.js';
import type { SearchReply, SearchRequest } from './search.js';

/** An idle thread is let go after this long (it holds a connection and its page cache). */
const IDLE_MS = 60_000;
/** JavaScript heap of a search thread: a page of snippets is built from at most 50 texts of 200,000 characters. */
const THREAD_HEAP_MB = 256;

export class SearchThreads {
  private readonly gate: SearchGate;
  private readonly idle = new Map<Worker, NodeJS.Timeout>();
  private readonly all = new Set<Worker>();
  private readonly entry: URL;
  private closed = false;

  constructor(
    private readonly file: string,
    private readonly limits: SearchLimits,
  ) {
    this.gate = new SearchGate(limits);
    // Built (dist/*.js): the thread's body directly. From the sources (tests, Studio): an entry that registers tsx.
    this.entry = new URL(
      import.meta.url.endsWith('.ts') ? './search-thread.mjs' : './search-thread-main.js',
      import.meta.url,
    );
  }

  async search(request: SearchRequest): Promise<SearchPage> {
    if (this.closed) throw new Error('the job store is closed');
    const release = await this.gate.acquire();
    if (this.closed) {
      release();
      throw new Error('the job store is closed');
    }
    const thread = this.takeIdle() ?? this.spawn();
    // A thread at work keeps the process alive, as any pending I/O would.
    thread.ref();
    return new Promise<SearchPage>((resolve, reject) => {
      const stopListening = (): void => {
        clearTimeout(timer);
        thread.off('message', onReply);
        thread.off('exit', onExit);
      };
      const onReply = (reply: SearchReply): void => {
        stopListening();
        this.park(thread);
        release();
        if ('page' in reply) resolve(reply.page);
        else if ('refused' in reply) reject(new SearchRefused(reply.refused.reason, reply.refused.message));
        else reject(new Error(`search failed: ${reply.error}`));
      };
      const onExit = (code: number): void => {
        stopListening();
        release();
        reject(new Error(`the search thread stopped (exit code ${code})`));
      };
      const timer = setTimeout(() => {
        stopListening();
        reject(this.gate.timeout());
        thread.once('exit', release);
        void thread.terminate();
      }, this.limits.timeoutMs);
      thread.on('message', onReply);
      thread.on('exit', onExit);
      thread.postMessage(request);
    });
  }

  /** Terminates every thread (a search still running is answered as stopped). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.all].map((t) => t.terminate()));
  }

  private spawn(): Worker {
    const thread = new Worker(this.entry, {
      workerData: { file: this.file },
      // No flags of the main thread's (its heap and source-map settings); the entry brings its own loader.
      execArgv: [],
      resourceLimits: { maxOldGenerationSizeMb: THREAD_HEAP_MB },
    });
    this.all.add(thread);
    // The search it was running is answered by its 'exit'.
    thread.on('error', () => undefined);
    thread.once('exit', () => {
      this.all.delete(thread);
      clearTimeout(this.idle.get(thread));
      this.idle.delete(thread);
    });
    return thread;
  }

  private takeIdle(): Worker | undefined {
    const [thread] = this.idle.keys();
    if (!thread) return undefined;
    clearTimeout(this.idle.get(thread));
    this.idle.delete(thread);
    return thread;
  }

  private park(thread: Worker): void {
    if (this.closed) return void thread.terminate();
    thread.unref();
    const timer = setTimeout(() => {
      this.idle.delete(thread);
      void thread.terminate();
    }, IDLE_MS);
    timer.unref();
    this.idle.set(thread, timer);
  }
}
