import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { loadConfig } from '../src/config.js';
import { freePort } from '../src/lib/net.js';
import { resolveToolPaths } from '../src/lib/tools.js';
import { TERMINAL_STATUSES, type Analysis, type JobDocument } from '../src/lib/types.js';
import { openJobStore, type JobStore, type StepRun } from '../src/store/index.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const BIN = path.join(ROOT, 'bin', 'media-orchestrator');
/** The team's shared media corpus: referenced in place, never copied into the repository. */
export const CORPUS = process.env.MEDIA_CORPUS ?? path.resolve(ROOT, '..', 'shared', 'corpus');

export interface ManifestRow {
  path: string;
  expect: string[];
  note: string;
}

export function manifest(): ManifestRow[] {
  const lines = fs.readFileSync(path.join(CORPUS, 'MANIFEST.tsv'), 'utf8').trim().split('\n').slice(1);
  return lines.map((line) => {
    const [p = '', expect = '', , note = ''] = line.split('\t');
    return { path: p, expect: expect.split('|'), note };
  });
}

/** `reject:CORRUPT_FILE|UNSUPPORTED_TYPE` means either code; normalise to outcomes like `image` or `reject:X`. */
export function acceptedOutcomes(row: ManifestRow): string[] {
  const out: string[] = [];
  for (const e of row.expect)
    out.push(e.startsWith('reject:') || ['image', 'video', 'audio', 'pdf'].includes(e) ? e : `reject:${e}`);
  return out;
}

export function outcomeOf(doc: JobDocument): string {
  if (doc.status === 'completed' || doc.status === 'completed_with_errors') return doc.fileType ?? 'unknown';
  return `reject:${doc.error?.code ?? 'NONE'}`;
}

/** The sha256 of a file's bytes, in hex. */
export function sha256Of(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `mo-${prefix}-`));
}

/**
 * The environment of the test run, less the settings that would send a test's media to a real AI provider (a
 * developer's own OPENAI_API_KEY) or change which models run: tests that want a provider name one on loopback.
 */
export function userEnv(): Record<string, string | undefined> {
  const env = { ...process.env };
  for (const name of Object.keys(env))
    if (/^(OPENAI_|AI_|VISION_|CHAT_MODEL|TRANSCRIBE_|POCKETSPHINX_)/.test(name)) delete env[name];
  return env;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the CLI to its end. `timeoutMs` is a hang guard: past it the process is killed, and the result says so in its
 * stderr (a killed run has no exit code; it was reported as exit 1 with empty output, which read like a crash).
 */
export function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 300_000): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      BIN,
      args,
      { env: { ...userEnv(), LOG_LEVEL: 'warn', ...env }, timeout: timeoutMs, maxBuffer: 32 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        const killed = err?.killed
          ? `\n[runCli: killed by ${String(err.signal)} at its ${timeoutMs} ms hang guard]`
          : '';
        resolve({ code, stdout, stderr: stderr + killed });
      },
    );
  });
}

/** A `media-orchestrator start` child process in its own process group, with its stderr kept for diagnosis. */
export class ServiceProcess {
  readonly child: ChildProcess;
  log = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: string[], env: Record<string, string>) {
    this.child = spawn(BIN, ['start', ...args], {
      // PORT 0: the API of every test service listens on a free port of its own.
      env: { ...userEnv(), LOG_LEVEL: 'info', PORT: '0', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
    });
    this.child.stderr?.on('data', (d: Buffer) => {
      this.log = (this.log + d.toString()).slice(-200_000);
    });
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  async ready(timeoutMs = 60_000): Promise<this> {
    const deadline = Date.now() + timeoutMs;
    while (!this.log.includes('media-orchestrator started')) {
      if (this.child.exitCode !== null || Date.now() > deadline) throw new Error(`service did not start:\n${this.log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return this;
  }

  /** Signals the whole process group (the service and its helpers). */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    try {
      if (this.child.pid) process.kill(-this.child.pid, signal);
    } catch {
      // already gone
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), 30_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** A `start` service on `state`'s jobs and `prefix`'s queues, listening on a free port; and where it answers. */
export async function serviceOn(
  state: TestState,
  prefix: string,
  env: Record<string, string> = {},
): Promise<{ service: ServiceProcess; base: string }> {
  const port = await freePort();
  const service = await new ServiceProcess([], {
    ...state.env,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: prefix,
    PORT: String(port),
    ...env,
  }).ready();
  return { service, base: `http://127.0.0.1:${port}` };
}

/** Deletes every Redis key a test created under its BullMQ prefix. */
export async function dropPrefix(redisUrl: string, prefix: string): Promise<void> {
  const { Redis } = await import('ioredis');
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

export function uniquePrefix(name: string): string {
  return `motest-${name}-${process.pid}-${Date.now().toString(36)}`;
}

export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * A service of a test's own, on the test Redis under `prefix`, reading the corpus, with short locks (a killed
 * process's work is noticed in seconds, not the default 30 s) and short retry delays.
 */
export function fastRecoveryEnv(state: TestState, prefix: string): Record<string, string> {
  return {
    ...state.env,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: prefix,
    INPUT_ROOTS: CORPUS,
    LOCK_DURATION_MS: '4000',
    STALLED_INTERVAL_MS: '2000',
    RETRY_BACKOFF_MS: '200',
  };
}

/** The PostgreSQL server tests may create databases on (trust auth on the machine's own by default). */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/**
 * Which backend the services a test starts keep their jobs in: `postgres` in vitest's postgres project (the service,
 * lifecycle, chaos and API files run there too), else the SQLite file in DATA_DIR.
 */
export const TEST_STORE: 'sqlite' | 'postgres' = process.env.TEST_STORE === 'postgres' ? 'postgres' : 'sqlite';

/**
 * The state of one test file's services: a DATA_DIR, and with TEST_STORE=postgres a database of its own on
 * TEST_DATABASE_URL's server, dropped by `drop()`. Tests read jobs and step runs through the same JobStore the service
 * uses, never its tables.
 */
export class TestState {
  private opened: Promise<JobStore> | null = null;

  private constructor(
    readonly dataDir: string,
    /** The variables that point a service at this state: DATA_DIR, and DATABASE_URL for postgres. */
    readonly env: Record<string, string>,
    private readonly database: string | null,
    private readonly serverUrl: string,
  ) {}

  /** `serverUrl`: the PostgreSQL server the database is made on (a PrivatePostgres's, say). */
  static async create(name: string, backend = TEST_STORE, serverUrl = TEST_DATABASE_URL): Promise<TestState> {
    const dataDir = tempDir(name);
    if (backend === 'sqlite') return new TestState(dataDir, { DATA_DIR: dataDir }, null, serverUrl);
    const database = `mo_${name.replace(/[^a-z0-9]/g, '_')}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
    await adminQuery(serverUrl, `CREATE DATABASE ${database}`);
    const url = new URL(serverUrl);
    url.pathname = `/${database}`;
    return new TestState(dataDir, { DATA_DIR: dataDir, DATABASE_URL: url.toString() }, database, serverUrl);
  }

  /** The PostgreSQL database's name; null on SQLite. */
  get databaseName(): string | null {
    return this.database;
  }

  get backend(): 'sqlite' | 'postgres' {
    return this.database ? 'postgres' : 'sqlite';
  }

  /** The job store as the service sees it (opened once; it creates the tables if the service has not yet). */
  store(): Promise<JobStore> {
    return (this.opened ??= openJobStore(loadConfig({ ...this.env, LOG_LEVEL: 'silent' })));
  }

  /** Closes the store and removes everything, whatever fails on the way (a store that never opened included). */
  async drop(): Promise<void> {
    const opened = this.opened;
    this.opened = null;
    try {
      if (opened) await (await opened).close();
    } catch {
      // It never opened, or its connection is gone: the database goes anyway.
    } finally {
      if (this.database) await adminQuery(this.serverUrl, `DROP DATABASE IF EXISTS ${this.database} WITH (FORCE)`);
      fs.rmSync(this.dataDir, { recursive: true, force: true });
    }
  }
}

async function adminQuery(serverUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** Every execution of the steps of `ids` (one id or several), in the order they started. Errors are thrown. */
export async function stepRuns(state: TestState, ids: string | string[]): Promise<StepRun[]> {
  const store = await state.store();
  const runs = (await Promise.all([ids].flat().map((id) => store.runs(id)))).flat();
  return runs.sort((a, b) => a.id - b.id);
}

/**
 * Where "every finished step ran exactly once" does not hold: a (job, step) with more than one succeeded or skipped
 * execution, or a step the job document says succeeded with no execution recorded at all (so a test cannot pass on
 * runs that were never written). An execution still `running` counts as recorded: a worker killed between BullMQ
 * taking its result and the `succeeded` row leaves one. Empty when it holds.
 */
export function executionsNotOnce(docs: JobDocument[], runs: StepRun[]): string[] {
  const finished = new Map<string, number>();
  for (const r of runs.filter((r) => r.status === 'succeeded' || r.status === 'skipped')) {
    const key = `${r.jobId}/${r.step}`;
    finished.set(key, (finished.get(key) ?? 0) + 1);
  }
  const out = [...finished].filter(([, n]) => n > 1).map(([key, n]) => `${key} ran ${n} times`);
  const recorded = new Set(runs.map((r) => `${r.jobId}/${r.step}`));
  for (const doc of docs)
    for (const [step, record] of Object.entries(doc.steps))
      if (record?.status === 'succeeded' && !recorded.has(`${doc.id}/${step}`))
        out.push(`${doc.id}/${step} succeeded with no execution recorded`);
  return out;
}

export async function storedJob(state: TestState, jobId: string): Promise<JobDocument | null> {
  return (await state.store()).get(jobId);
}

/** A video long enough that extractAudio takes seconds: `minutes` of small test pattern with a tone. */
export function makeLongVideo(file: string, minutes: number): void {
  execFileSync(resolveToolPaths().ffmpeg, [
    ...['-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc=size=160x120:rate=5:duration=${minutes * 60}`],
    ...['-f', 'lavfi', '-i', `sine=frequency=300:sample_rate=16000:duration=${minutes * 60}`],
    // Cheap to make (small picture, mono 16 kHz sound), still minutes of audio for extractAudio to work through.
    ...['-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'aac', '-ac', '1', '-b:a', '32k', file],
  ]);
}

/**
 * Whether an ffmpeg process is working on job `jobId`'s file in `state`'s DATA_DIR (the orchestrator pins every file
 * into uploads/<job id>/, so that is the path ffmpeg opens; the producer's path never appears). pgrep's exit status 1
 * means none; anything else (no pgrep, a bad pattern) is thrown, so a check of "no ffmpeg left" cannot pass because
 * nothing was looked at.
 */
export function ffmpegWorkingFor(state: TestState, jobId: string): boolean {
  const pinned = path.join(state.dataDir, 'uploads', jobId) + path.sep;
  try {
    return execFileSync('pgrep', ['-f', `ffmpeg.*${pinned}`], { encoding: 'utf8' }).trim().length > 0;
  } catch (err) {
    if ((err as { status?: number }).status === 1) return false;
    throw err;
  }
}

export async function waitFor<T>(
  what: string,
  fn: () => T | null | undefined | false | Promise<T | null | undefined | false>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function isTerminal(doc: JobDocument | null): doc is JobDocument {
  return !!doc && TERMINAL_STATUSES.includes(doc.status);
}

/** Waits until every job in `ids` has ended in `state`'s store; their documents, in the order of `ids`. */
export function finishedJobs(state: TestState, ids: string[], timeoutMs = 60_000): Promise<JobDocument[]> {
  return waitFor(
    `jobs ${ids.join(', ')} to finish`,
    async () => {
      const docs = await Promise.all(ids.map((id) => storedJob(state, id)));
      return docs.every(isTerminal) && docs;
    },
    timeoutMs,
  );
}

export interface SseEvent {
  id: number;
  type: string;
  data: Record<string, unknown>;
}

/**
 * Reads an SSE stream to its end (the server closes it after the terminal status), or stops after `max` events; a 204
 * (nothing after Last-Event-ID on an ended job) is no events.
 */
export async function readEvents(
  url: string,
  headers: Record<string, string> = {},
  max = Infinity,
): Promise<SseEvent[]> {
  const controller = new AbortController();
  const res = await fetch(url, { headers, signal: controller.signal });
  if (res.status === 204) return []; // the job had ended and there is nothing after Last-Event-ID
  if (!res.headers.get('content-type')?.startsWith('text/event-stream'))
    throw new Error(`${url}: ${res.status} ${res.headers.get('content-type')}, not an event stream`);
  const events: SseEvent[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let cut: number;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const fields = Object.fromEntries(
        block
          .split('\n')
          .filter((l) => l && !l.startsWith(':'))
          .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
      );
      if (fields.data === undefined) continue;
      events.push({
        id: Number(fields.id),
        type: fields.event ?? 'message',
        data: JSON.parse(fields.data) as Record<string, unknown>,
      });
      if (events.length >= max) {
        controller.abort();
        return events;
      }
    }
  }
  return events;
}

/** An image analysis with these labels (score 0.9) and neutral statistics, for tests that need one in a document. */
export function analysisWith(labels: string[], extra: Partial<Analysis> = {}): Analysis {
  return {
    provider: 'human',
    labels: labels.map((name) => ({ name, score: 0.9 })),
    dominantColor: '#000000',
    palette: [],
    brightness: 0,
    sharpness: 0,
    entropy: 0,
    phash: '0',
    ...extra,
  };
}

/**
 * A PostgreSQL server of the test's own (initdb in a temporary folder, a free port), for faults that must not reach
 * the machine's shared server: restarts, and connections killed by the dozen. As root it runs as the `postgres` user
 * (PostgreSQL refuses root). `stop()` removes it.
 */
export class PrivatePostgres {
  private constructor(
    private readonly dir: string,
    readonly port: number,
    private readonly bin: string,
  ) {}

  static async start(): Promise<PrivatePostgres> {
    const versions = fs.readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
    const bin = path.join('/usr/lib/postgresql', versions[0]!, 'bin');
    const dir = tempDir('pg');
    const server = new PrivatePostgres(dir, await freePort(), bin);
    if (process.getuid?.() === 0) execFileSync('chown', ['-R', 'postgres', dir]);
    server.run('initdb', ['-D', server.data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
    server.ctl('start');
    return server;
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  private get data(): string {
    return path.join(this.dir, 'data');
  }

  /** `pg_ctl <action>` (start, restart, stop), waiting until it is done; `fast` shutdown: sessions are cut. */
  ctl(action: 'start' | 'restart' | 'stop'): void {
    const options = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`;
    this.run('pg_ctl', ['-D', this.data, '-l', path.join(this.dir, 'log'), '-m', 'fast', '-w', '-o', options, action]);
  }

  /** Ends every session on `database` but the caller's; how many it ended. */
  async terminateConnections(database: string): Promise<number> {
    const client = new pg.Client({ connectionString: this.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ n: number }>(
        `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
          WHERE datname = $1 AND pid <> pg_backend_pid()`,
        [database],
      );
      return rows[0]?.n ?? 0;
    } finally {
      await client.end();
    }
  }

  stop(): void {
    try {
      this.run('pg_ctl', ['-D', this.data, '-m', 'immediate', '-w', 'stop']);
    } finally {
      fs.rmSync(this.dir, { recursive: true, force: true });
    }
  }

  private run(tool: string, args: string[]): void {
    const command = path.join(this.bin, tool);
    if (process.getuid?.() === 0)
      execFileSync('runuser', ['-u', 'postgres', '--', command, ...args], { stdio: 'pipe' });
    else execFileSync(command, args, { stdio: 'pipe' });
  }
}
