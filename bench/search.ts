/**
 * Search under load: `jobs` jobs indexed with transcripts of 60,000 characters (test/support/long-texts.ts), then
 * the broadest query the language allows (eight three-letter prefixes every text has) against a `start --role all`
 * process, on SQLite and on PostgreSQL (a database of its own on BENCH_DATABASE_URL's server):
 * - one search at a time, the median of five after a first one;
 * - /healthz and GET /jobs/:id, probed one after the other while `clients` such searches are sent at once, and what
 *   those searches answered.
 * The baseline of the probes is the same probes on the idle service.
 */
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { loadConfig } from '../src/config.js';
import { freePort } from '../src/lib/net.js';
import { openJobStore } from '../src/store/index.js';
import { BROAD_QUERY, indexLongJobs } from '../test/support/long-texts.js';
import { freshDatabase, startRole, stopAll } from './postgres.js';
import { dropPrefix, percentile } from './service.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

type Row = (label: string, value: string) => void;

async function timed(url: string): Promise<{ ms: number; status: number }> {
  const started = performance.now();
  const res = await fetch(url);
  await res.arrayBuffer();
  return { ms: performance.now() - started, status: res.status };
}

/** Probes `paths` one after the other until `until` settles; each path's latencies. */
async function probe(base: string, paths: string[], until: Promise<unknown>): Promise<number[][]> {
  let settled = false;
  void until.finally(() => (settled = true));
  const latencies = paths.map(() => [] as number[]);
  do {
    for (const [i, p] of paths.entries()) latencies[i]!.push((await timed(`${base}${p}`)).ms);
    await new Promise((r) => setTimeout(r, 50));
  } while (!settled);
  return latencies;
}

const spread = (ms: number[]): string =>
  `${percentile(ms, 50).toFixed(1)} / ${Math.max(...ms).toFixed(1)} ms (${ms.length} probes)`;

async function oneBackend(
  label: string,
  env: Record<string, string>,
  jobs: number,
  clients: number[],
  row: Row,
): Promise<void> {
  const store = await openJobStore(loadConfig({ ...env, LOG_LEVEL: 'warn' }));
  const indexStarted = performance.now();
  await indexLongJobs(store, jobs, 60_000);
  await store.close();
  row(
    `${label}: index ${jobs} jobs of 60,000 characters`,
    `${((performance.now() - indexStarted) / 1000).toFixed(1)} s`,
  );
  const prefix = `mo-bench-search-${process.pid}`;
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const children: ChildProcess[] = [];
  try {
    children.push(
      await startRole(['--role', 'all'], {
        ...env,
        REDIS_URL,
        QUEUE_PREFIX: prefix,
        PORT: String(port),
        SEARCH_RATE_LIMIT: '100000',
        LOG_LEVEL: 'info',
      }),
    );
    const search = `${base}/jobs?q=${encodeURIComponent(BROAD_QUERY)}`;
    await timed(search);
    const single: number[] = [];
    for (let i = 0; i < 5; i++) single.push((await timed(search)).ms);
    row(`  one search of "${BROAD_QUERY}", median of 5`, `${percentile(single, 50).toFixed(0)} ms`);
    const paths = ['/healthz', '/jobs/long-0'];
    const idle = await probe(base, paths, new Promise((r) => setTimeout(r, 2000)));
    row('  idle (baseline): /healthz p50 / max', spread(idle[0]!));
    row('  idle (baseline): GET /jobs/:id p50 / max', spread(idle[1]!));
    for (const n of clients) {
      const started = performance.now();
      const answers = Promise.all(Array.from({ length: n }, () => timed(search)));
      const [health, job] = await probe(base, paths, answers);
      const done = await answers;
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      row(`  ${n} searches at once: /healthz p50 / max`, spread(health!));
      row(`  ${n} searches at once: GET /jobs/:id p50 / max`, spread(job!));
      const counts = new Map<number, number>();
      for (const a of done) counts.set(a.status, (counts.get(a.status) ?? 0) + 1);
      const byStatus = [...counts].map(([status, count]) => `${count} × ${status}`).join(', ');
      row(`  ${n} searches at once: answers, all in`, `${byStatus}; ${seconds} s`);
    }
  } finally {
    await stopAll(children);
    await dropPrefix(prefix);
  }
}

export async function benchSearch(work: string, jobs: number, clients: number[], row: Row): Promise<void> {
  await oneBackend('SQLite', { DATA_DIR: path.join(work, 'search-sqlite') }, jobs, clients, row);
  const db = await freshDatabase('search');
  try {
    await oneBackend(
      'PostgreSQL',
      { DATA_DIR: path.join(work, 'search-pg'), DATABASE_URL: db.url },
      jobs,
      clients,
      row,
    );
  } finally {
    await db.drop();
  }
}
