/**
 * The first jobs on a fresh `media-orchestrator start` against the same work once the process is warm. Right after
 * the start line, one photo and one PDF are queued together (the cold jobs); then the same two files again, three
 * times, one pair after another (the warm jobs). Each step's `durationMs` comes from the job documents (GET
 * /jobs/:id): what a user waits for, queueing to a step thread included. The figure that matters: the slowest
 * step of the cold jobs against the same step warm (median of the warm runs).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { freePort } from '../src/lib/net.js';
import type { JobDocument, StepName } from '../src/lib/types.js';
import { createProducer } from '../src/queue/producer.js';
import { stop, waitForLine } from './memory.js';
import { dropPrefix } from './service.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ROOT = path.resolve(import.meta.dirname, '..');
const BIN = path.join(ROOT, 'bin', 'media-orchestrator');
const FILES = { image: 'image/flowers.jpeg', pdf: 'pdf/three-pages.pdf' } as const;
const WARM_RUNS = 3;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function finished(base: string, id: string, timeoutMs: number): Promise<JobDocument> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const res = await fetch(`${base}/jobs/${id}`);
    if (res.ok) {
      const doc = (await res.json()) as JobDocument;
      if (doc.status === 'completed') return doc;
      if (doc.status === 'failed' || doc.status === 'cancelled')
        throw new Error(`bench job ${id} ended ${doc.status}: ${JSON.stringify(doc.error)}`);
    }
    await sleep(100);
  }
  throw new Error(`bench job ${id} did not finish within ${timeoutMs} ms`);
}

/** Each step's durationMs in a finished job (steps that ran). */
function durations(doc: JobDocument): Map<StepName, number> {
  const out = new Map<StepName, number>();
  for (const [step, record] of Object.entries(doc.steps)) {
    if (record.status === 'succeeded' && typeof record.durationMs === 'number')
      out.set(step as StepName, record.durationMs);
  }
  return out;
}

const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

export async function benchCold(work: string, corpus: string, row: (l: string, v: string) => void): Promise<void> {
  const prefix = `mo-bench-cold-${process.pid}`;
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(BIN, ['start'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DATA_DIR: path.join(work, 'cold'),
      REDIS_URL,
      QUEUE_PREFIX: prefix,
      INPUT_ROOTS: corpus,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const producer = createProducer({ redisUrl: REDIS_URL, prefix });
  try {
    const t0 = performance.now();
    await waitForLine(child, 'media-orchestrator started', 120_000);
    const readyMs = performance.now() - t0;
    /** One photo and one PDF queued together; each step's time by `kind step`. */
    const pair = async (tag: string): Promise<Map<string, number>> => {
      const kinds = Object.keys(FILES) as (keyof typeof FILES)[];
      await Promise.all(
        kinds.map((kind) =>
          producer.enqueueJob({ jobId: `cold-${tag}-${kind}`, file: { path: path.join(corpus, FILES[kind]) } }),
        ),
      );
      const docs = await Promise.all(kinds.map((kind) => finished(base, `cold-${tag}-${kind}`, 300_000)));
      return new Map(docs.flatMap((doc, i) => [...durations(doc)].map(([step, ms]) => [`${kinds[i]} ${step}`, ms])));
    };
    const cold = await pair('first');
    const warm = new Map<string, number[]>();
    for (let r = 0; r < WARM_RUNS; r++) {
      for (const [step, ms] of await pair(`warm${r}`)) warm.set(step, [...(warm.get(step) ?? []), ms]);
    }
    row('`start` to its start line (step threads warmed)', `${readyMs.toFixed(0)} ms`);
    let slowest: [string, number] | null = null;
    for (const [step, ms] of cold) {
      const w = warm.get(step);
      if (!w) continue;
      row(`  ${step}: first job / warm (median of ${w.length})`, `${ms} / ${median(w)} ms`);
      if (!slowest || ms > slowest[1]) slowest = [step, ms];
    }
    if (slowest) {
      const [step, ms] = slowest;
      row(`slowest step of the first jobs (${step}), first / warm`, (ms / median(warm.get(step)!)).toFixed(2));
    }
  } finally {
    await producer.close();
    await stop(child);
    await dropPrefix(prefix);
  }
}
