/**
 * OCR with tesseract.js on language data that ships in npm packages (`@tesseract.js-data/<lang>`): nothing is
 * downloaded and nothing is cached on disk. tesseract.js runs its WebAssembly core (from `tesseract.js-core` in
 * node_modules) in a worker thread of its own; the language data is read from the package's folder (`langPath` is a
 * local path, never a URL) and `cacheMethod: 'none'` keeps it from reading or writing `./<lang>.traineddata`.
 *
 * tesseract.js is loaded on first use: most step threads never read text from pixels.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { gunzipSync } from 'node:zlib';
import type * as Tesseract from 'tesseract.js';
import { MediaError } from './errors.js';
import { findLanguage, missingLanguagesProblem, type OcrLanguage } from './ocr-languages.js';
import { threadExecArgv } from './thread-flags.js';

const require = createRequire(import.meta.url);

export interface OcrWord {
  text: string;
  confidence: number;
}

/** Text read from one picture: lines of words, with the mean confidence (0-100) of the words kept. */
export interface OcrText {
  text: string;
  confidence: number;
  words: number;
}

export interface RecognizeOptions {
  /** Words below this confidence (0-100) are left out. */
  minConfidence: number;
  /** The picture's resolution, when known (a rendered PDF page); else PICTURE_DPI. */
  dpi?: number;
  signal?: AbortSignal;
}

/**
 * The resolution a picture of unknown resolution is read at. Left to itself tesseract takes the one the file claims:
 * 72 dpi in a PNG from sharp, for which the 54-pixel letters of a photographed notice are 54-point headlines, and it
 * found no text at all. At 300 dpi (a scan's) the same letters read as 13-point type.
 */
export const PICTURE_DPI = 300;

type TesseractModule = Pick<typeof Tesseract, 'createWorker' | 'OEM' | 'PSM'>;
let loading: Promise<TesseractModule> | null = null;
function loadTesseract(): Promise<TesseractModule> {
  loading ??= Promise.resolve()
    .then(spawnWithOurFlags)
    .then(() => import('tesseract.js'))
    .then((m) => m.default);
  return loading;
}

/**
 * tesseract.js starts its worker thread with `new Worker(path)`, which inherits this thread's Node flags, including a
 * preload that cannot run in a thread (LangGraph Studio's server starts with one); the thread then dies before it
 * answers and the recognition waits for ever. Its spawner is replaced, before tesseract.js loads it, by one that
 * gives the thread the flags our own threads get.
 */
function spawnWithOurFlags(): void {
  const spawner = path.join(path.dirname(require.resolve('tesseract.js')), 'worker', 'node', 'spawnWorker.js');
  require(spawner);
  const cached = require.cache[spawner];
  if (!cached) throw new Error(`tesseract.js's worker spawner is not where it was (${spawner})`);
  cached.exports = ({ workerPath }: { workerPath: string }): Worker => {
    const thread = new Worker(workerPath, { execArgv: threadExecArgv() });
    spawned?.(thread);
    return thread;
  };
}

/** Told of the thread tesseract.js spawns, during the (synchronous) start of its createWorker: see createWorker. */
let spawned: ((thread: Worker) => void) | null = null;

/** A tesseract worker and the thread it runs in. */
interface Started {
  worker: Tesseract.Worker;
  thread: Worker;
  /** Rejects when the thread stops without being told to (a crash, memory): tesseract.js would wait for ever. */
  died: Promise<never>;
}

/**
 * A tesseract worker for one set of languages. Recognitions run one at a time (the worker is one thread); a
 * cancelled recognition terminates the worker, since tesseract cannot stop one half way.
 */
export class OcrReader {
  private worker: Promise<Started> | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private idleTimer: NodeJS.Timeout | null = null;

  /** `idleMs`: the worker (30-100 MB) is let go after this long without work, and started again when needed. */
  constructor(
    readonly languages: readonly OcrLanguage[],
    private readonly idleMs = 60_000,
  ) {}

  /** Whether the picture has lines of text at all: tesseract's page layout analysis, without recognition. */
  hasText(image: Buffer, opts: { dpi?: number; signal?: AbortSignal } = {}): Promise<boolean> {
    return this.exclusive(opts.signal, async (worker, T) => {
      await worker.setParameters({
        tessedit_pageseg_mode: T.PSM.AUTO_ONLY,
        user_defined_dpi: String(Math.round(opts.dpi ?? PICTURE_DPI)),
      });
      const { data } = await worker.recognize(image, {}, { blocks: true, text: false });
      return (data.blocks ?? []).some((b) => b.paragraphs.some((p) => p.lines.length > 0));
    });
  }

  /** The words tesseract reads with at least `minConfidence`, in reading order, a line of the picture a line. */
  recognize(image: Buffer, opts: RecognizeOptions): Promise<OcrText> {
    return this.exclusive(opts.signal, async (worker, T) => {
      await worker.setParameters({
        tessedit_pageseg_mode: T.PSM.AUTO,
        user_defined_dpi: String(Math.round(opts.dpi ?? PICTURE_DPI)),
      });
      const { data } = await worker.recognize(image, {}, { blocks: true, text: false });
      return keepConfident(data.blocks ?? [], opts.minConfidence);
    });
  }

  /** The thread the current worker runs in, if one is started (tests stop it as a crash would). */
  async thread(): Promise<Worker | null> {
    return this.worker ? (await this.worker).thread : null;
  }

  async close(): Promise<void> {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    const worker = this.worker;
    this.worker = null;
    if (worker) await worker.then((w) => w.worker.terminate()).catch(() => undefined);
  }

  private exclusive<T>(
    signal: AbortSignal | undefined,
    fn: (worker: Tesseract.Worker, T: TesseractModule) => Promise<T>,
  ): Promise<T> {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    const run = this.queue.then(async () => {
      signal?.throwIfAborted();
      const T = await loadTesseract();
      const started = await this.start(T);
      const onAbort = (): void => void this.close();
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        return await Promise.race([fn(started.worker, T), started.died]);
      } finally {
        signal?.removeEventListener('abort', onAbort);
        signal?.throwIfAborted();
      }
    });
    this.queue = run.catch(() => undefined);
    void this.queue.then(() => {
      if (this.idleTimer) clearTimeout(this.idleTimer);
      this.idleTimer = setTimeout(() => void this.close(), this.idleMs);
      this.idleTimer.unref();
    });
    return run;
  }

  private start(T: TesseractModule): Promise<Started> {
    if (this.worker) return this.worker;
    const current: Promise<Started> = createWorker(T, this.languages).then(
      (started) => {
        // A thread that stops on its own is forgotten: the next recognition starts another.
        void started.died.catch(() => {
          if (this.worker === current) this.worker = null;
        });
        return started;
      },
      (err: unknown) => {
        if (this.worker === current) this.worker = null;
        throw err instanceof Error ? err : new Error(`tesseract did not start: ${String(err)}`);
      },
    );
    this.worker = current;
    return current;
  }
}

async function createWorker(T: TesseractModule, languages: readonly OcrLanguage[]): Promise<Started> {
  const [first, ...rest] = languages;
  if (!first) throw new Error('no OCR language');
  // tesseract.js keeps this array as its list of loaded languages: the others are added below, from their own
  // packages (one langPath serves one folder).
  const loaded = [first.code];
  let thread: Worker | undefined;
  spawned = (t) => (thread = t);
  let creating: Promise<Tesseract.Worker>;
  try {
    creating = T.createWorker(loaded, T.OEM.LSTM_ONLY, { langPath: first.dir, cacheMethod: 'none', gzip: true });
  } finally {
    spawned = null;
  }
  if (!thread) throw new Error('tesseract.js started no worker thread');
  const own = thread;
  let stopping = false;
  const died = new Promise<never>((_, reject) => {
    own.once('exit', (code) => {
      if (!stopping)
        reject(new MediaError('INTERNAL', `the OCR worker stopped (exit code ${code})`, { retryable: true }));
    });
  });
  died.catch(() => undefined);
  const worker = await Promise.race([creating, died]);
  // terminate() is ours: the thread's exit then is no failure.
  const terminate = worker.terminate.bind(worker);
  worker.terminate = () => {
    stopping = true;
    return terminate();
  };
  const started = { worker, thread: own, died };
  if (rest.length === 0) return started;
  for (const lang of rest) {
    const data = gunzipSync(fs.readFileSync(path.join(lang.dir, `${lang.code}.traineddata.gz`)));
    await worker.FS('writeFile', [`${lang.code}.traineddata`, data]);
    loaded.push(lang.code);
  }
  await worker.reinitialize(languages.map((l) => l.code).join('+'), T.OEM.LSTM_ONLY);
  return started;
}

/** Word-like: at least two letters or digits, or one letter/digit standing alone (`a`, `I`, `5`). */
const WORDISH = /[\p{L}\p{N}]/u;

function keepConfident(blocks: Tesseract.Block[], minConfidence: number): OcrText {
  const paragraphs: string[] = [];
  let sum = 0;
  let count = 0;
  for (const block of blocks) {
    for (const paragraph of block.paragraphs) {
      const lines: string[] = [];
      for (const line of paragraph.lines) {
        const words = line.words.filter((w) => w.confidence >= minConfidence && WORDISH.test(w.text));
        for (const w of words) sum += w.confidence;
        count += words.length;
        if (words.length) lines.push(words.map((w) => w.text).join(' '));
      }
      if (lines.length) paragraphs.push(lines.join('\n'));
    }
  }
  return { text: paragraphs.join('\n\n'), confidence: count ? Math.round(sum / count) : 0, words: count };
}

/** Readers by language set, one per step thread: a reader starts in about a second, so it is kept while used. */
export class OcrReaders {
  private readonly readers = new Map<string, OcrReader>();

  /** A reader for these languages (checked at start-up, or by the job's instructions). */
  get(codes: readonly string[]): OcrReader {
    const key = codes.join('+');
    let reader = this.readers.get(key);
    if (!reader) {
      const problem = missingLanguagesProblem(codes);
      if (problem) throw new Error(problem);
      reader = new OcrReader(codes.map((c) => findLanguage(c)!));
      this.readers.set(key, reader);
    }
    return reader;
  }

  async close(): Promise<void> {
    const all = [...this.readers.values()];
    this.readers.clear();
    await Promise.all(all.map((r) => r.close()));
  }
}
