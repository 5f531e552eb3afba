/**
 * The fuzz driver: plans cases (case i of seed s = one corpus file and its mutations, drawn from caseRng(s, i)),
 * writes each mutated file into the input folder of a child (fuzz/child.ts), and watches the child. A case past its
 * time limit is a HANG: the child's process group is killed and a new child takes the next case. A child that dies
 * with a case in flight is a CRASH. Every finished case is judged (fuzz/judge.ts); each finding keeps its mutated
 * file and the child's last log lines under `<out>/findings/`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CONFIG_VARIABLES } from '../src/config.js';
import { STEP_NAMES } from '../src/lib/types.js';
import type { ChildReply, ChildRequest } from './child.js';
import { judge, type FindingKind } from './judge.js';
import { mutate } from './mutate.js';
import { caseRng, pick } from './rng.js';

export const ROOT = path.resolve(import.meta.dirname, '..');
export const CORPUS_TYPES = ['image', 'video', 'audio', 'pdf', 'bad'] as const;

export interface FuzzOptions {
  seed: number;
  /** The case indices to run, in order: `start … start+count-1`, or the one given with `--case`. */
  cases: number[];
  /** Corpus folders to draw from; the file of case i depends on this list, so a re-run must name the same. */
  types: readonly string[];
  /**
   * One corpus file (its path in MANIFEST.tsv) every case mutates, instead of one drawn from `types`: case i of a
   * seed is the same bytes as when it was drawn from a list that held the file, whatever else the corpus holds now.
   */
  base?: string;
  /** Children running cases side by side, each one case at a time. */
  concurrency: number;
  /** The time limit of every step in the children (STEP_TIMEOUTS): a TIMEOUT is a clean, named outcome. */
  stepTimeoutMs: number;
  /** A child is replaced after this many cases, so a crash is charged to the case in flight, not to a long history. */
  recycleAfter: number;
  /** Run the offline vision and speech models too (slow); by default only the text summarizer runs. */
  models: boolean;
  out: string;
  corpus: string;
  /** Keep every mutated file (for `--case`), not only those of findings. */
  keepFiles: boolean;
  onCase?: (result: CaseResult, done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface CaseResult {
  index: number;
  file: string;
  type: string;
  ops: string[];
  bytes: number;
  outcome: string;
  stepErrors: string[];
  stepMs: Record<string, number>;
  ms: number;
  finding: { kind: FindingKind; detail: string } | null;
}

export interface Tally {
  cases: number;
  clean: number;
  CRASH: number;
  HANG: number;
  INTERNAL: number;
  BAD_DOCUMENT: number;
}

export interface Summary {
  seed: number;
  first: number;
  count: number;
  types: readonly string[];
  concurrency: number;
  stepTimeoutMs: number;
  caseLimitMs: number;
  wallMs: number;
  casesPerMinute: number;
  byType: Record<string, Tally>;
  total: Tally;
  byOutcome: Record<string, number>;
  stepErrors: Record<string, number>;
  findings: (CaseResult & { reproduce: string; kept: string })[];
}

interface CorpusFile {
  path: string;
  type: string;
  data: Buffer;
}

/** Corpus files listed in MANIFEST.tsv under the given folders, in manifest order (the order picks depend on). */
export function loadCorpus(corpus: string, types: readonly string[]): CorpusFile[] {
  const rows = fs.readFileSync(path.join(corpus, 'MANIFEST.tsv'), 'utf8').trim().split('\n').slice(1);
  const files = rows
    .map((row) => row.split('\t')[0]!)
    .filter((p) => types.includes(p.split('/')[0]!))
    .map((p) => ({ path: p, type: p.split('/')[0]!, data: fs.readFileSync(path.join(corpus, p)) }));
  if (files.length === 0) throw new Error(`no corpus files of types ${types.join(', ')} in ${corpus}`);
  return files;
}

/** Case i of seed s: which file, and its mutated bytes. */
export function makeCase(
  seed: number,
  index: number,
  files: CorpusFile[],
): { file: CorpusFile; data: Buffer; ops: string[] } {
  const rng = caseRng(seed, index);
  const file = pick(rng, files);
  return { file, ...mutate(file.data, rng) };
}

/**
 * The longest a case may take before it is a hang: the longest chain of steps (validate, extractMetadata,
 * extractAudio, transcribe, summarize) each using all 3 attempts to their limit (plus the pool's 2 s grace and the
 * retry backoff), and a minute for thread boots and the graph around them.
 */
export function caseLimit(stepTimeoutMs: number): number {
  const perStep = 3 * (stepTimeoutMs + 2000) + 1000 + 2000;
  return 5 * perStep + 60_000;
}

/** The children's environment: the caller's, less every setting of this project (a user's DATA_DIR, limits, models). */
function childEnv(opts: FuzzOptions, dataDir: string): Record<string, string> {
  const env: Record<string, string> = {};
  const ours = new Set(CONFIG_VARIABLES.filter((v) => v !== 'FFMPEG_PATH' && v !== 'FFPROBE_PATH'));
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !ours.has(k)) env[k] = v;
  return {
    ...env,
    DATA_DIR: dataDir,
    LOG_LEVEL: 'error',
    STEP_TIMEOUTS: STEP_NAMES.map((s) => `${s}=${opts.stepTimeoutMs}`).join(','),
    ...(opts.models ? {} : { AI_PROVIDERS: 'vision=off,speech=off,text=local' }),
  };
}

/** One child process and its scratch folder (DATA_DIR and the mutated inputs). */
class Child {
  readonly proc: ChildProcess;
  readonly dir: string;
  readonly inputDir: string;
  cases = 0;
  log = '';
  private readonly ready: Promise<void>;
  private pending: ((reply: ChildReply | { type: 'exit'; detail: string }) => void) | null = null;
  readonly exited: Promise<void>;

  constructor(opts: FuzzOptions) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mo-fuzz-'));
    this.inputDir = path.join(this.dir, 'in');
    fs.mkdirSync(this.inputDir);
    this.proc = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'fuzz', 'child.ts')], {
      cwd: ROOT,
      env: childEnv(opts, path.join(this.dir, 'data')),
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      // Its own process group: a hang is ended by killing the child, its step threads and any ffmpeg together.
      detached: true,
    });
    this.proc.stderr!.on('data', (d: Buffer) => {
      this.log = (this.log + d.toString()).slice(-20_000);
    });
    this.ready = new Promise((resolve, reject) => {
      const onBoot = (m: ChildReply): void => {
        if (m.type === 'ready') resolve();
      };
      this.proc.once('message', onBoot);
      this.proc.once('exit', () => reject(new Error(`fuzz child exited before it was ready:\n${this.log}`)));
    });
    this.ready.catch(() => undefined);
    this.proc.on('message', (m: ChildReply) => this.pending?.(m));
    this.exited = new Promise((resolve) =>
      this.proc.once('exit', (code, signal) => {
        this.pending?.({ type: 'exit', detail: `child exited with ${signal ?? `code ${code}`}` });
        resolve();
      }),
    );
  }

  /** Runs one case; resolves with the child's reply, an exit, or a timeout after `limitMs`. */
  async run(
    req: Extract<ChildRequest, { type: 'run' }>,
    limitMs: number,
  ): Promise<ChildReply | { type: 'exit'; detail: string } | { type: 'hang' }> {
    await this.ready;
    this.cases += 1;
    this.log = '';
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending = null;
        resolve({ type: 'hang' });
      }, limitMs);
      this.pending = (reply) => {
        if (reply.type === 'ready') return;
        clearTimeout(timer);
        this.pending = null;
        resolve(reply);
      };
      this.proc.send(req satisfies ChildRequest);
    });
  }

  kill(): void {
    try {
      process.kill(-this.proc.pid!, 'SIGKILL');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }

  /** Lets the child close its runtime (threads, database), then removes its folder; kills it if it will not go. */
  async close(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      if (this.proc.connected) this.proc.send({ type: 'close' } satisfies ChildRequest);
      const timer = setTimeout(() => this.kill(), 30_000);
      await this.exited;
      clearTimeout(timer);
    }
    // Helpers of a killed child (an ffmpeg mid-decode) die with its group; nothing else may hold these files.
    this.kill();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }
}

const emptyTally = (): Tally => ({ cases: 0, clean: 0, CRASH: 0, HANG: 0, INTERNAL: 0, BAD_DOCUMENT: 0 });

/** The command that runs case `index` again, from the file it mutated (so a corpus that grows does not change it). */
export function reproduceCommand(opts: Pick<FuzzOptions, 'seed'>, index: number, file: string): string {
  return `npm run fuzz -- --seed ${opts.seed} --case ${index} --base ${file}`;
}

/** The files cases are drawn from: those of `types`, or the one `base` names. */
function casesFrom(opts: FuzzOptions): CorpusFile[] {
  if (opts.base === undefined) return loadCorpus(opts.corpus, opts.types);
  const type = opts.base.split('/')[0]!;
  const file = loadCorpus(opts.corpus, [type]).find((f) => f.path === opts.base);
  if (!file) throw new Error(`no corpus file ${opts.base} in ${opts.corpus}/MANIFEST.tsv`);
  return [file];
}

export async function runFuzz(opts: FuzzOptions): Promise<Summary> {
  const files = casesFrom(opts);
  const limitMs = caseLimit(opts.stepTimeoutMs);
  const findingsDir = path.join(opts.out, 'findings');
  fs.mkdirSync(findingsDir, { recursive: true });
  const log = fs.createWriteStream(path.join(opts.out, 'cases.jsonl'));
  const summary: Summary = {
    seed: opts.seed,
    first: opts.cases[0] ?? 0,
    count: opts.cases.length,
    types: opts.types,
    concurrency: opts.concurrency,
    stepTimeoutMs: opts.stepTimeoutMs,
    caseLimitMs: limitMs,
    wallMs: 0,
    casesPerMinute: 0,
    byType: Object.fromEntries(opts.types.map((t) => [t, emptyTally()])),
    total: emptyTally(),
    byOutcome: {},
    stepErrors: {},
    findings: [],
  };
  const started = performance.now();
  const children = new Set<Child>();
  const stopAll = (): void => {
    for (const c of children) c.kill();
  };
  opts.signal?.addEventListener('abort', stopAll, { once: true });

  const record = (result: CaseResult, kept: string): void => {
    log.write(`${JSON.stringify(result)}\n`);
    const tallies = [summary.total, summary.byType[result.type]!];
    for (const t of tallies) {
      t.cases += 1;
      if (result.finding) t[result.finding.kind] += 1;
      else t.clean += 1;
    }
    summary.byOutcome[result.outcome] = (summary.byOutcome[result.outcome] ?? 0) + 1;
    for (const e of result.stepErrors) summary.stepErrors[e] = (summary.stepErrors[e] ?? 0) + 1;
    if (result.finding)
      summary.findings.push({ ...result, reproduce: reproduceCommand(opts, result.index, result.file), kept });
    opts.onCase?.(result, summary.total.cases, opts.cases.length);
  };

  let next = 0;
  const lane = async (): Promise<void> => {
    let child: Child | null = null;
    try {
      while (next < opts.cases.length && !opts.signal?.aborted) {
        const index = opts.cases[next++]!;
        if (!child || !child.alive || child.cases >= opts.recycleAfter) {
          await child?.close();
          if (child) children.delete(child);
          child = new Child(opts);
          children.add(child);
        }
        const { file, data, ops } = makeCase(opts.seed, index, files);
        const name = `c${index}-${path.basename(file.path)}`;
        const input = path.join(child.inputDir, name);
        fs.writeFileSync(input, data);
        const t0 = performance.now();
        const reply = await child.run(
          { type: 'run', index, jobId: `fuzz-${opts.seed}-${index}`, path: input, name },
          limitMs,
        );
        const base = {
          index,
          file: file.path,
          type: file.type,
          ops,
          bytes: data.length,
          ms: Math.round(performance.now() - t0),
        };
        let result: CaseResult;
        if (reply.type === 'done') result = { ...base, ...judge(reply.doc) };
        else {
          const finding =
            reply.type === 'hang'
              ? { kind: 'HANG' as const, detail: `no result within ${limitMs} ms` }
              : reply.type === 'exit'
                ? { kind: 'CRASH' as const, detail: reply.detail }
                : reply.type === 'threw'
                  ? { kind: 'CRASH' as const, detail: `runner.run threw: ${reply.message}` }
                  : { kind: 'CRASH' as const, detail: `unexpected reply ${reply.type}` };
          result = { ...base, outcome: finding.kind.toLowerCase(), stepErrors: [], stepMs: {}, finding };
          if (reply.type === 'hang') {
            child.kill();
            await child.exited;
          }
        }
        let kept = '';
        if (result.finding || opts.keepFiles) {
          kept = path.join(findingsDir, name);
          fs.copyFileSync(input, kept);
          if (result.finding) fs.writeFileSync(`${kept}.log`, child.log);
        }
        fs.rmSync(input, { force: true });
        if (!opts.signal?.aborted) record(result, kept);
      }
    } finally {
      if (child) {
        await child.close();
        children.delete(child);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, opts.concurrency) }, lane));
  } finally {
    opts.signal?.removeEventListener('abort', stopAll);
    await new Promise((resolve) => log.end(resolve));
  }
  summary.wallMs = Math.round(performance.now() - started);
  summary.casesPerMinute = Math.round((summary.total.cases / summary.wallMs) * 60_000 * 10) / 10;
  fs.writeFileSync(path.join(opts.out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  return summary;
}
