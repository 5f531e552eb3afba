/**
 * Near-duplicate lookup at scale: `count` perceptual hashes in one owner's scope (the worst case: every job of one
 * user), uniformly random, registered straight into the job_hashes table, then GET /jobs/:id/duplicates' lookup
 * (JobStore.duplicates: the sha256 and four multi-index part lookups, then the distances) for 1,000 random jobs, on
 * SQLite and, with BENCH_DATABASE_URL's server, on PostgreSQL. Planted copies (a hash NEAR_DUPLICATE_DISTANCE bits
 * away from a registered one, its bits spread over the four parts) check that the index misses none.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { loadConfig } from '../src/config.js';
import { hashParts } from '../src/lib/hamming.js';
import { openJobStore, type JobStore } from '../src/store/index.js';
import { NEAR_DUPLICATE_DISTANCE } from '../src/store/duplicates.js';
import { freshDatabase } from './postgres.js';
import { percentile } from './service.js';

type Row = (label: string, value: string) => void;

const LOOKUPS = 1000;
const PLANTED = 100;

/** A random 64-bit hash as 16 hex digits. */
function randomHash(): string {
  const n = (BigInt(Math.floor(Math.random() * 2 ** 32)) << 32n) | BigInt(Math.floor(Math.random() * 2 ** 32));
  return n.toString(16).padStart(16, '0');
}

/** `hash` with NEAR_DUPLICATE_DISTANCE bits flipped, spread over the four parts as evenly as they go. */
function planted(hash: string): string {
  let n = BigInt(`0x${hash}`);
  for (let i = 0; i < NEAR_DUPLICATE_DISTANCE; i++) n ^= 1n << BigInt((i % 4) * 16 + Math.floor(i / 4));
  return n.toString(16).padStart(16, '0');
}

/** The rows to register: `count` random hashes, of which the last PLANTED are copies of the first PLANTED. */
function* rows(count: number): Generator<[string, string, string, ...number[]]> {
  const firsts: string[] = [];
  for (let i = 0; i < count; i++) {
    const hash = i >= count - PLANTED ? planted(firsts[i - (count - PLANTED)]!) : randomHash();
    if (i < PLANTED) firsts.push(hash);
    yield [`j${i}`, i.toString(16).padStart(64, '0'), hash, ...hashParts(hash)];
  }
}

async function measure(store: JobStore, count: number, label: string, row: Row): Promise<void> {
  await store.duplicates('j0'); // first query: statements prepared, pages read
  const times: number[] = [];
  let candidates = 0;
  for (let i = 0; i < LOOKUPS; i++) {
    const id = `j${Math.floor(Math.random() * count)}`;
    const started = performance.now();
    candidates += (await store.duplicates(id)).length;
    times.push(performance.now() - started);
  }
  let found = 0;
  for (let i = 0; i < PLANTED; i++) {
    if ((await store.duplicates(`j${i}`)).some((d) => d.jobId === `j${count - PLANTED + i}`)) found++;
  }
  row(
    `${label}: lookup of one job among ${count.toLocaleString('en')} hashes`,
    `p50 ${percentile(times, 50).toFixed(2)} ms, p99 ${percentile(times, 99).toFixed(2)} ms (${LOOKUPS} lookups, ` +
      `${candidates} duplicates found by chance); planted copies found ${found}/${PLANTED}`,
  );
}

export async function benchDuplicates(
  work: string,
  count: number,
  row: Row,
  backends = ['sqlite', 'postgres'],
): Promise<void> {
  if (backends.includes('sqlite')) await benchSqlite(work, count, row);
  if (backends.includes('postgres')) await benchPostgres(work, count, row);
}

async function benchSqlite(work: string, count: number, row: Row): Promise<void> {
  const dir = path.join(work, 'duplicates-sqlite');
  fs.mkdirSync(dir, { recursive: true });
  const config = loadConfig({ DATA_DIR: dir });
  const store = await openJobStore(config);
  try {
    const db = new Database(config.dbPath);
    const insert = db.prepare(
      "INSERT INTO job_hashes (job_id, owner, sha256, hash, p0, p1, p2, p3) VALUES (?, 'bench', ?, ?, ?, ?, ?, ?)",
    );
    const started = performance.now();
    db.transaction(() => {
      for (const r of rows(count)) insert.run(...r);
    })();
    db.close();
    row('SQLite: registering the hashes (one transaction)', `${((performance.now() - started) / 1000).toFixed(1)} s`);
    await measure(store, count, 'SQLite', row);
  } finally {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function benchPostgres(work: string, count: number, row: Row): Promise<void> {
  const database = await freshDatabase('duplicates');
  const pgStore = await openJobStore(
    loadConfig({ DATA_DIR: path.join(work, 'duplicates-pg'), DATABASE_URL: database.url }),
  );
  try {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    const started = performance.now();
    let batch: unknown[][] = [];
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      // One statement a batch: columns as arrays, unnested.
      await client.query(
        `INSERT INTO job_hashes (job_id, owner, sha256, hash, p0, p1, p2, p3)
           SELECT j, 'bench', s, h, a, b, c, d FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[],
             $6::int[], $7::int[]) AS t(j, s, h, a, b, c, d)`,
        [0, 1, 2, 3, 4, 5, 6].map((k) => batch.map((r) => r[k])),
      );
      batch = [];
    };
    for (const r of rows(count)) {
      batch.push(r);
      if (batch.length === 10_000) await flush();
    }
    await flush();
    // What autovacuum does to a table that only grows (PostgreSQL 13+): the visibility map lets the part lookups
    // read the indexes alone.
    await client.query('VACUUM ANALYZE job_hashes');
    await client.end();
    row(
      'PostgreSQL: registering the hashes (batches of 10,000)',
      `${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    await measure(pgStore, count, 'PostgreSQL', row);
  } finally {
    await pgStore.close();
    await database.drop();
  }
}
