/**
 * What wakes an event stream: the store's notification of a job's new events, written by another connection (another
 * process), and not the streams' slow re-read; closing the API ends every wait at once; on PostgreSQL a LISTEN
 * connection that drops is replaced, says so (null: re-read everything), and notifications flow again.
 */
import pg from 'pg';
import { afterAll, describe, expect, test } from 'vitest';
import { createLogger } from '../src/lib/log.js';
import { JobEventWaiters } from '../src/server/event-waiters.js';
import { loadConfig } from '../src/config.js';
import { openJobStore, type JobStore } from '../src/store/index.js';
import { TEST_DATABASE_URL, TestState, waitFor } from './helpers.js';

const states: TestState[] = [];
const stores: JobStore[] = [];
afterAll(async () => {
  for (const s of stores) await s.close();
  for (const s of states) await s.drop();
});

/** A store for the writer (the state's) and one for the watching API, on separate connections. */
async function pair(backend: 'sqlite' | 'postgres'): Promise<{ writer: JobStore; reader: JobStore; db: string }> {
  const state = await TestState.create(`waiters_${backend}`, backend);
  states.push(state);
  const reader = await openJobStore(loadConfig({ ...state.env, LOG_LEVEL: 'silent' }));
  stores.push(reader);
  return { writer: await state.store(), reader, db: state.env.DATABASE_URL ?? '' };
}

const input = (jobId: string) => ({ jobId, file: { path: `/media/${jobId}.jpg` } });
const sleep = (ms: number) => new Promise<'slept'>((r) => setTimeout(() => r('slept'), ms));

describe.each(['sqlite', 'postgres'] as const)('event waiters on %s', (backend) => {
  test('a wait ends when another connection commits an event of its job, not at its long limit', async () => {
    const { writer, reader } = await pair(backend);
    const waiters = new JobEventWaiters(reader, createLogger('silent'));
    try {
      const armed = await waiters.arm('j1');
      const other = await waiters.arm('j2');
      const woken = armed.wait(120_000).then(() => 'woken' as const);
      await writer.createOrGet(input('j1'));
      // The limit is two minutes: only the notification can end the wait before the 60 s guard.
      expect(await Promise.race([woken, sleep(60_000)])).toBe('woken');
      // A wait for another job was not woken by it.
      expect(await Promise.race([other.wait(120_000).then(() => 'woken'), sleep(1500)])).toBe('slept');
      other.cancel();
    } finally {
      await waiters.close();
    }
  });

  test('closing ends every wait at once, and a stream armed after it does not wait', async () => {
    const { reader } = await pair(backend);
    const waiters = new JobEventWaiters(reader, createLogger('silent'));
    const armed = await waiters.arm('idle');
    const woken = armed.wait(120_000).then(() => 'woken' as const);
    await waiters.close();
    expect(await Promise.race([woken, sleep(10_000)])).toBe('woken');
    expect(waiters.closing).toBe(true);
    const late = await waiters.arm('idle');
    expect(await Promise.race([late.wait(120_000).then(() => 'woken'), sleep(10_000)])).toBe('woken');
  });
});

test('postgres: a LISTEN connection that drops is replaced, announced as null, and notifications flow again', async () => {
  const { writer, reader, db } = await pair('postgres');
  const heard: (string | null)[] = [];
  const stop = await reader.watchEvents((id) => heard.push(id));
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  try {
    const database = new URL(db).pathname.slice(1);
    const killed = await admin.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'",
      [database],
    );
    expect(killed.rowCount).toBe(1);
    await waitFor('the watcher to say it reconnected', () => heard.includes(null), 30_000);
    await writer.createOrGet(input('after-reconnect'));
    await waitFor('a notification on the new connection', () => heard.includes('after-reconnect'), 30_000);
    await stop();
    // Stopped means stopped: no LISTEN connection is left.
    await waitFor('the LISTEN connection to go', async () => {
      const { rows } = await admin.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'",
        [database],
      );
      return rows[0]!.n === 0;
    });
  } finally {
    await admin.end();
  }
});
