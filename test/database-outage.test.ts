/**
 * PostgreSQL going away under a running service: every connection of the database killed, again and again, and the
 * server restarted. A lost connection must cost retries, never a process, a job, or a step run twice. The server is a
 * private one (a restart must not reach other test files), and the service runs as separate processes: two
 * orchestrators and a worker.
 */
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { JobDocument } from '../src/lib/types.js';
import { createProducer } from '../src/queue/producer.js';
import {
  acceptedOutcomes,
  CORPUS,
  dropPrefix,
  executionsNotOnce,
  fastRecoveryEnv,
  manifest,
  outcomeOf,
  PrivatePostgres,
  ServiceProcess,
  stepRuns,
  TestState,
  TEST_REDIS_URL,
  uniquePrefix,
  isTerminal,
} from './helpers.js';

let server: PrivatePostgres;
let state: TestState;
const prefix = uniquePrefix('db-outage');
const running: ServiceProcess[] = [];
const rows = manifest().filter((r) => !r.path.startsWith('image/iphone'));

beforeAll(async () => {
  server = await PrivatePostgres.start();
  state = await TestState.create('db-outage', 'postgres', server.url);
}, 60_000);

afterAll(async () => {
  await Promise.all(running.map((p) => p.stop()));
  await dropPrefix(TEST_REDIS_URL, prefix);
  await state?.drop().catch(() => undefined);
  server?.stop();
});

function start(role: 'orchestrator' | 'worker'): ServiceProcess {
  const p = new ServiceProcess(['--role', role], fastRecoveryEnv(state, prefix));
  running.push(p);
  return p;
}

/** The processes that have exited, with how and the end of their log. */
function exited(): string[] {
  return running
    .filter((p) => p.child.exitCode !== null || p.child.signalCode !== null)
    .map((p) => `exit ${p.child.exitCode ?? p.child.signalCode}: ${p.log.slice(-3000)}`);
}

async function enqueue(batch: string, n: number): Promise<string[]> {
  const producer = createProducer({ redisUrl: TEST_REDIS_URL, prefix });
  const ids: string[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const jobId = `${batch}-${i}`;
      await producer.enqueueJob({ jobId, file: { path: path.join(CORPUS, rows[(i * 7) % rows.length]!.path) } });
      ids.push(jobId);
    }
  } finally {
    await producer.close();
  }
  return ids;
}

/**
 * Waits until every job has ended, reading through a store of the test's own that reconnects after the kills (a
 * read that fails is tried again; the last error is part of the timeout's message).
 */
async function ended(ids: string[], timeoutMs: number): Promise<JobDocument[]> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const store = await state.store();
      const docs = await Promise.all(ids.map((id) => store.get(id)));
      if (docs.every(isTerminal)) return docs;
      last = ids
        .flatMap((id, i) => (isTerminal(docs[i] ?? null) ? [] : [`${id}: ${docs[i]?.status ?? 'missing'}`]))
        .join(', ');
    } catch (err) {
      last = `read failed: ${(err as Error).message}`;
    }
    if (Date.now() > deadline)
      throw new Error(`jobs did not end: ${last}\nexited: ${exited().join('\n')}\n${running[0]?.log.slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function expectOutcomes(ids: string[], docs: JobDocument[]): void {
  ids.forEach((id, i) => {
    const row = rows[(i * 7) % rows.length]!;
    const doc = docs[i]!;
    expect(doc.error?.code, `${id} ${row.path}: ${doc.error?.message}`).not.toBe('INTERNAL');
    expect(acceptedOutcomes(row), `${id} ${row.path}: ${JSON.stringify(doc.error)}`).toContain(outcomeOf(doc));
  });
}

test(
  'killing every connection 30 times costs retries, not processes, jobs or repeated steps',
  { timeout: 300_000 },
  async () => {
    await Promise.all([start('orchestrator').ready(), start('orchestrator').ready(), start('worker').ready()]);
    const ids = await enqueue('kill', 30);
    let killed = 0;
    for (let i = 0; i < 30; i++) {
      killed += await server.terminateConnections(state.databaseName!);
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(killed, 'connections were killed').toBeGreaterThan(30);
    expect(exited()).toEqual([]);
    const docs = await ended(ids, 240_000);
    expect(exited()).toEqual([]);
    expectOutcomes(ids, docs);
    expect(executionsNotOnce(docs, await stepRuns(state, ids))).toEqual([]);
  },
);

test('a PostgreSQL restart in the middle of a run loses nothing', { timeout: 300_000 }, async () => {
  if (running.length === 0)
    await Promise.all([start('orchestrator').ready(), start('orchestrator').ready(), start('worker').ready()]);
  const ids = await enqueue('restart', 20);
  await new Promise((r) => setTimeout(r, 1500));
  const store = await state.store();
  const unfinished = (await Promise.all(ids.map((id) => store.get(id)))).filter((d) => !isTerminal(d)).length;
  server.ctl('stop');
  // Down long enough for every process to notice: queries fail, pools empty, LISTEN drops.
  await new Promise((r) => setTimeout(r, 3000));
  server.ctl('start');
  const docs = await ended(ids, 240_000);
  expect(exited()).toEqual([]);
  expect(unfinished, 'jobs were in flight when the server stopped').toBeGreaterThan(0);
  expectOutcomes(ids, docs);
  expect(executionsNotOnce(docs, await stepRuns(state, ids))).toEqual([]);
});
