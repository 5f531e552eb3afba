/**
 * The PostgreSQL backend and scaling out, each figure beside a baseline measured in the same run:
 * - the no-op service and the phone photos on SQLite (baseline) and on PostgreSQL;
 * - checkpoint bytes left per finished job in PostgreSQL (after compaction);
 * - the phone photos with one worker process (baseline) and with two, and the no-op batch with one orchestrator
 *   process (baseline) and with two: separate `start --role` processes sharing Redis and PostgreSQL, as on separate
 *   machines.
 * The bench makes a database of its own on BENCH_DATABASE_URL's server (default: the local one) and drops it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { QueueEvents } from 'bullmq';
import pg from 'pg';
import { bullConnection } from '../src/queue/connection.js';
import { createProducer } from '../src/queue/producer.js';
import { dropPrefix, makePhotos, noopService, noopWorkers, photosThroughService } from './service.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const SERVER_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const BIN = path.resolve(import.meta.dirname, '..', 'bin', 'media-orchestrator');

type Row = (label: string, value: string) => void;

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: SERVER_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** A fresh database for one measurement; its URL, and a function that drops it. */
export async function freshDatabase(name: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const database = `mo_bench_${name}_${process.pid}`;
  await admin(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  await admin(`CREATE DATABASE ${database}`);
  const url = new URL(SERVER_URL);
  url.pathname = `/${database}`;
  return { url: url.toString(), drop: () => admin(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`) };
}

/** What the finished jobs left in PostgreSQL: checkpoint rows and bytes, job rows and bytes. */
async function footprint(url: string): Promise<{ checkpointRows: number; checkpointBytes: number; jobBytes: number }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ rows: string; bytes: string; jobs: string }>(
      `SELECT (SELECT count(*) FROM checkpoints) + (SELECT count(*) FROM checkpoint_blobs)
                + (SELECT count(*) FROM checkpoint_writes) AS rows,
              pg_total_relation_size('checkpoints') + pg_total_relation_size('checkpoint_blobs')
                + pg_total_relation_size('checkpoint_writes') AS bytes,
              (SELECT coalesce(sum(pg_column_size(doc)), 0) FROM jobs) AS jobs`,
    );
    const r = rows[0]!;
    return { checkpointRows: Number(r.rows), checkpointBytes: Number(r.bytes), jobBytes: Number(r.jobs) };
  } finally {
    await client.end();
  }
}

export async function benchBackends(work: string, jobs: number, photoCount: number, row: Row): Promise<void> {
  const db = await freshDatabase('noop');
  try {
    const sqlite = await noopService(path.join(work, 'pg-noop-sqlite'), work, jobs, {});
    const postgres = await noopService(path.join(work, 'pg-noop-pg'), work, jobs, { DATABASE_URL: db.url });
    row(`service, no-op steps, ${jobs} jobs: SQLite (baseline)`, `${(jobs / sqlite.sec).toFixed(1)} jobs/s`);
    row('  PostgreSQL', `${(jobs / postgres.sec).toFixed(1)} jobs/s`);
    row('  ratio PostgreSQL / SQLite', (sqlite.sec / postgres.sec).toFixed(2));
    const left = await footprint(db.url);
    row('  PostgreSQL checkpoint rows left after compaction', String(left.checkpointRows));
    row(
      '  PostgreSQL checkpoint tables per finished job (pages kept)',
      `${(left.checkpointBytes / jobs / 1024).toFixed(2)} KiB`,
    );
    row('  PostgreSQL job documents per job', `${(left.jobBytes / jobs / 1024).toFixed(2)} KiB`);
  } finally {
    await db.drop();
  }

  const photos = await makePhotos(path.join(work, 'pg-photos'), photoCount);
  const photoDb = await freshDatabase('photos');
  try {
    const env = { AI_PROVIDERS: 'vision=off' };
    const sqliteSec = await photosThroughService(work, photos, 'pg-sqlite', env);
    const pgSec = await photosThroughService(work, photos, 'pg-pg', { ...env, DATABASE_URL: photoDb.url });
    row(`${photoCount} phone photos, one process: SQLite (baseline)`, `${sqliteSec.toFixed(1)} s`);
    row('  PostgreSQL', `${pgSec.toFixed(1)} s`);
    row('  throughput ratio PostgreSQL / SQLite', (sqliteSec / pgSec).toFixed(2));
  } finally {
    await photoDb.drop();
  }
}

/** A `start --role …` process, ready when it logs that it started. */
export async function startRole(args: string[], env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(BIN, ['start', ...args], {
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    let log = '';
    child.stderr.on('data', (d: Buffer) => {
      log = (log + d.toString()).slice(-20_000);
      if (log.includes('media-orchestrator started')) resolve();
    });
    child.once('exit', (code) =>
      reject(new Error(`start ${args.join(' ')} exited with ${code}:\n${log.slice(-2000)}`)),
    );
  });
  child.stderr.resume();
  return child;
}

export async function stopAll(children: ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null) return resolve();
          c.once('exit', () => resolve());
          c.kill('SIGTERM');
        }),
    ),
  );
}

/** Seconds until `count` jobs sent by `send` have completed on the jobs queue of `prefix`. */
async function timeJobs(prefix: string, count: number, send: (i: number) => Promise<unknown>): Promise<number> {
  const events = new QueueEvents('jobs', { connection: bullConnection(REDIS_URL, 'worker'), prefix });
  await events.waitUntilReady();
  let done = 0;
  const finished = new Promise<void>((resolve) =>
    events.on('completed', () => {
      if (++done === count) resolve();
    }),
  );
  const t0 = performance.now();
  for (let i = 0; i < count; i++) await send(i);
  await finished;
  const sec = (performance.now() - t0) / 1000;
  await events.close();
  return sec;
}

/**
 * Starts `roles` as `start --role` processes on a database and queue prefix of their own, returns what `run` measures
 * against them, then stops them and removes the database and the queue keys.
 */
async function withRoles(
  work: string,
  name: string,
  roles: string[],
  extra: Record<string, string>,
  run: (prefix: string) => Promise<number>,
): Promise<number> {
  const db = await freshDatabase(name);
  const prefix = `mo-bench-scale-${name}-${process.pid}`;
  const env = {
    DATABASE_URL: db.url,
    DATA_DIR: path.join(work, `scale-${name}`),
    QUEUE_PREFIX: prefix,
    INPUT_ROOTS: work,
    REDIS_URL,
    ...extra,
  };
  const children: ChildProcess[] = [];
  try {
    for (const role of roles) children.push(await startRole(['--role', role], env));
    return await run(prefix);
  } finally {
    await stopAll(children);
    await dropPrefix(prefix);
    await db.drop();
  }
}

export async function benchScaling(work: string, jobs: number, photoCount: number, row: Row): Promise<void> {
  const photos = await makePhotos(path.join(work, 'scale-photos'), photoCount);

  // Photos: one orchestrator, and one or two worker processes.
  const photoSec: number[] = [];
  for (const workers of [1, 2]) {
    const roles = ['orchestrator', ...Array<string>(workers).fill('worker')];
    photoSec.push(
      await withRoles(work, `photos${workers}`, roles, { AI_PROVIDERS: 'vision=off' }, async (prefix) => {
        // Let the step threads boot before the clock starts, as in a running service.
        await new Promise((r) => setTimeout(r, 3000));
        const producer = createProducer({ redisUrl: REDIS_URL, prefix });
        try {
          return await timeJobs(prefix, photos.length, (i) =>
            producer.enqueueJob({ jobId: `p-${i}`, file: { path: photos[i]! } }),
          );
        } finally {
          await producer.close();
        }
      }),
    );
  }
  row(`${photoCount} phone photos, one orchestrator: one worker process (baseline)`, `${photoSec[0]!.toFixed(1)} s`);
  row('  two worker processes', `${photoSec[1]!.toFixed(1)} s`);
  row('  throughput ratio two / one', (photoSec[0]! / photoSec[1]!).toFixed(2));

  // No-op steps: one or two orchestrator processes; the steps are answered at once by no-op workers in this process.
  const noopSec: number[] = [];
  const file = path.join(work, 'noop.bin');
  fs.writeFileSync(file, 'x');
  for (const orchestrators of [1, 2]) {
    const roles = Array<string>(orchestrators).fill('orchestrator');
    noopSec.push(
      await withRoles(work, `noop${orchestrators}`, roles, {}, async (prefix) => {
        const workers = noopWorkers(prefix);
        const producer = createProducer({ redisUrl: REDIS_URL, prefix });
        try {
          return await timeJobs(prefix, jobs, (i) => producer.enqueueJob({ jobId: `n-${i}`, file: { path: file } }));
        } finally {
          await producer.close();
          await Promise.all(workers.map((w) => w.close()));
        }
      }),
    );
  }
  row(`no-op steps, ${jobs} jobs: one orchestrator process (baseline)`, `${(jobs / noopSec[0]!).toFixed(1)} jobs/s`);
  row('  two orchestrator processes', `${(jobs / noopSec[1]!).toFixed(1)} jobs/s`);
  row('  throughput ratio two / one', (noopSec[0]! / noopSec[1]!).toFixed(2));
}
