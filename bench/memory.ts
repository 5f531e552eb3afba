/**
 * Memory of one `media-orchestrator start` process (all roles, default concurrency), read from /proc: idle after
 * start, and while 1,000 jobs of corpus files (images, PDFs, audio, video) are queued and running. Baseline, in the
 * same run: a plain BullMQ worker process that has loaded sharp, as a queue script without orchestration would.
 * Step threads live inside the process, so its RSS counts them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { createProducer } from '../src/queue/producer.js';
import { dropPrefix } from './service.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ROOT = path.resolve(import.meta.dirname, '..');
const BIN = path.join(ROOT, 'bin', 'media-orchestrator');

interface ProcStatus {
  rssMb: number;
  threads: number;
}

/** VmRSS and thread count of a live process; throws if it is gone (a bench must not report a dead process as 0 MB). */
export function procStatus(pid: number): ProcStatus {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status);
    if (!m) throw new Error(`no ${name} in /proc/${pid}/status`);
    return Number(m[1]);
  };
  return { rssMb: field('VmRSS') / 1024, threads: field('Threads') };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The highest RSS seen over `ms`, sampled every `everyMs`. */
async function peakOver(pid: number, ms: number, everyMs = 250): Promise<ProcStatus> {
  let peak: ProcStatus = procStatus(pid);
  const end = Date.now() + ms;
  while (Date.now() < end) {
    await sleep(everyMs);
    const now = procStatus(pid);
    if (now.rssMb > peak.rssMb) peak = now;
  }
  return peak;
}

export function waitForLine(child: ChildProcess, text: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let log = '';
    const timer = setTimeout(
      () => reject(new Error(`no "${text}" within ${timeoutMs} ms:\n${log.slice(-2000)}`)),
      timeoutMs,
    );
    const onData = (d: Buffer): void => {
      log = (log + d.toString()).slice(-20_000);
      if (log.includes(text)) {
        clearTimeout(timer);
        child.stderr?.off('data', onData);
        resolve();
      }
    };
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before "${text}":\n${log.slice(-2000)}`));
    });
  });
}

export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  await exited;
  clearTimeout(timer);
}

/**
 * A `media-orchestrator start` process on its own DATA_DIR and QUEUE_PREFIX, reading the corpus, with only PATH and
 * HOME from this environment (and `env`); its log on stderr, for waitForLine.
 */
export function startProcess(
  dataDir: string,
  prefix: string,
  corpus: string,
  env: Record<string, string> = {},
): ChildProcess {
  return spawn(BIN, ['start'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DATA_DIR: dataDir,
      REDIS_URL,
      QUEUE_PREFIX: prefix,
      INPUT_ROOTS: corpus,
      PORT: '0',
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
}

/** A plain BullMQ worker with sharp loaded, idle. */
async function plainWorkerRss(prefix: string): Promise<number> {
  const script = `
    import { Worker } from 'bullmq';
    import sharp from 'sharp';
    const url = new URL(process.env.REDIS_URL);
    const w = new Worker('plain', async () => sharp, { connection: { host: url.hostname, port: Number(url.port || 6379) }, prefix: process.env.PREFIX });
    await w.waitUntilReady();
    console.error('plain worker ready');
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: ROOT,
    env: { ...process.env, REDIS_URL, PREFIX: prefix },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  try {
    await waitForLine(child, 'plain worker ready', 30_000);
    await sleep(3000);
    return (await peakOver(child.pid!, 3000)).rssMb;
  } finally {
    await stop(child);
  }
}

export async function benchMemory(
  work: string,
  corpus: string,
  jobs: number,
  windowSec: number,
  row: (l: string, v: string) => void,
  opts: { types?: string[]; env?: Record<string, string> } = {},
): Promise<void> {
  const prefix = `mo-bench-mem-${process.pid}`;
  const files = fs
    .readFileSync(path.join(corpus, 'MANIFEST.tsv'), 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split('\t'))
    .filter(([, expect]) => !expect!.startsWith('reject'))
    .filter(([p]) => !opts.types || opts.types.includes(p!.split('/')[0]!))
    .map(([p]) => path.join(corpus, p!));

  const plainMb = await plainWorkerRss(`${prefix}-plain`);

  const dataDir = path.join(work, 'memory');
  const child = startProcess(dataDir, prefix, corpus, opts.env);
  try {
    await waitForLine(child, 'media-orchestrator started', 120_000);
    const started = Date.now();
    // Idle with the step threads warmed at start-up, then once those of pools other than light have retired
    // (STEP_THREAD_IDLE_MS, 60 s by default, without work).
    await sleep(5000);
    const warmIdle = await peakOver(child.pid!, 5000);
    await sleep(Math.max(0, 70_000 - (Date.now() - started)));
    const idle = await peakOver(child.pid!, 5000);

    const producer = createProducer({ redisUrl: REDIS_URL, prefix });
    const t0 = Date.now();
    for (let i = 0; i < jobs; i++) {
      const file = files[i % files.length]!;
      await producer.enqueueJob({ jobId: `mem-${i}`, file: { path: file } });
    }
    await producer.close();
    const busy = await peakOver(child.pid!, Math.max(0, windowSec * 1000 - (Date.now() - t0)));
    const db = new Database(path.join(dataDir, 'orchestrator.db'), { readonly: true });
    const { done } = db.prepare('SELECT count(*) AS done FROM jobs WHERE finished_at IS NOT NULL').get() as {
      done: number;
    };
    db.close();

    row('plain BullMQ worker with sharp, idle (baseline)', `${plainMb.toFixed(0)} MB`);
    row(
      'service (start, all roles), idle, warmed threads',
      `${warmIdle.rssMb.toFixed(0)} MB, ${warmIdle.threads} OS threads`,
    );
    row('service, idle after the warmed threads retired', `${idle.rssMb.toFixed(0)} MB, ${idle.threads} OS threads`);
    row('ratio idle / plain', (idle.rssMb / plainMb).toFixed(2));
    row(
      `service, ${jobs} jobs queued, peak over ${windowSec} s (${done} finished)`,
      `${busy.rssMb.toFixed(0)} MB, ${busy.threads} OS threads`,
    );
    row('ratio busy / plain', (busy.rssMb / plainMb).toFixed(2));
  } finally {
    await stop(child);
    await dropPrefix(prefix);
    await dropPrefix(`${prefix}-plain`);
  }
}
