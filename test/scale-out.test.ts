/**
 * Many machines, one PostgreSQL: an API process, two orchestrators and two workers, each its own `start --role`
 * process sharing only Redis and PostgreSQL (and DATA_DIR, the shared volume). 50 corpus jobs go in through the API;
 * one orchestrator and one worker are killed with SIGKILL while they work and are not restarted: the survivors take
 * over their jobs and tasks. Every job must reach its MANIFEST outcome, no step that had succeeded may run again, and
 * the API's event streams must carry every transition the other processes made, exactly as the store holds them.
 */
import path from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { freePort } from '../src/lib/net.js';
import type { JobDocument } from '../src/lib/types.js';
import {
  acceptedOutcomes,
  CORPUS,
  dropPrefix,
  executionsNotOnce,
  finishedJobs,
  manifest,
  outcomeOf,
  readEvents,
  ServiceProcess,
  stepRuns,
  TEST_REDIS_URL,
  TestState,
  uniquePrefix,
  waitFor,
  type SseEvent,
} from './helpers.js';

const prefix = uniquePrefix('scale-out');
const state = await TestState.create('scale_out', 'postgres');
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const env = {
  ...state.env,
  REDIS_URL: TEST_REDIS_URL,
  QUEUE_PREFIX: prefix,
  INPUT_ROOTS: CORPUS,
  PORT: String(port),
  // Short locks so the survivors notice a killed process's work in seconds, not the default 30 s.
  LOCK_DURATION_MS: '4000',
  STALLED_INTERVAL_MS: '2000',
  RETRY_BACKOFF_MS: '200',
  // `ready()` waits for the start-up line, logged at info.
  LOG_LEVEL: 'info',
};
const processes: ServiceProcess[] = [];
const start = (role: string): ServiceProcess => {
  const p = new ServiceProcess(['--role', role], env);
  processes.push(p);
  return p;
};

afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop()));
  await dropPrefix(TEST_REDIS_URL, prefix);
  await state.drop();
});

/** The job's events as SSE delivered them, reconnecting with Last-Event-ID if a stream ends before the job does. */
async function follow(id: string): Promise<SseEvent[]> {
  const seen: SseEvent[] = [];
  for (let round = 0; round < 20; round++) {
    const last = seen.at(-1);
    const headers: Record<string, string> = last ? { 'last-event-id': String(last.id) } : {};
    const more = await readEvents(`${base}/jobs/${id}/events`, headers);
    if (more.length === 0 && last) return seen;
    seen.push(...more);
    const end = seen.at(-1);
    if (end?.type === 'status' && !['queued', 'running'].includes(end.data.status as string)) return seen;
  }
  throw new Error(`the event stream of ${id} never ended: ${JSON.stringify(seen.slice(-3))}`);
}

test(
  '50 jobs across two orchestrators and two workers survive a SIGKILL of one of each; SSE sees every transition',
  { timeout: 900_000 },
  async () => {
    const api = start('api');
    const orchestrators = [start('orchestrator'), start('orchestrator')];
    const workers = [start('worker'), start('worker')];
    await Promise.all([api, ...orchestrators, ...workers].map((p) => p.ready(240_000)));

    const rows = manifest().filter((r) => !r.path.startsWith('image/iphone'));
    const jobs: { id: string; row: (typeof rows)[number] }[] = [];
    for (let i = 0; i < 50; i++) {
      const row = rows[(i * 7) % rows.length]!;
      const res = await fetch(`${base}/jobs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ file: { path: path.join(CORPUS, row.path) } }),
      });
      expect(res.status, await res.clone().text()).toBe(202);
      jobs.push({ id: ((await res.json()) as { id: string }).id, row });
    }
    const ids = jobs.map((j) => j.id);
    // A client per job on the API process, which runs no job itself: everything it streams was written elsewhere.
    const streams = ids.map((id) => follow(id));

    // Kill while work is under way and unfinished, and do not restart: the other orchestrator and worker take over.
    const unfinished = async (): Promise<number> =>
      (await Promise.all(ids.map((id) => state.store().then((s) => s.get(id))))).filter(
        (d) => !d || d.status === 'queued' || d.status === 'running',
      ).length;
    await waitFor('work to be under way', async () => (await stepRuns(state, ids)).length >= 20, 300_000);
    const unfinishedAtKills = [await unfinished()];
    orchestrators[0]!.kill('SIGKILL');
    await waitFor('more work', async () => (await stepRuns(state, ids)).length >= 60, 300_000);
    unfinishedAtKills.push(await unfinished());
    workers[0]!.kill('SIGKILL');
    expect(
      unfinishedAtKills.every((n) => n > 0),
      `unfinished at the kills: ${unfinishedAtKills.join(', ')}`,
    ).toBe(true);

    const docs = await finishedJobs(state, ids, 600_000);
    jobs.forEach(({ row, id }, i) => {
      const doc = docs[i]!;
      expect(doc.error?.code, `${id} ${row.path}`).not.toBe('INTERNAL');
      expect(acceptedOutcomes(row), `${id} ${row.path}: ${JSON.stringify(doc.error)}`).toContain(outcomeOf(doc));
    });

    // No step that had succeeded ran again, whoever ran it.
    const runs = await stepRuns(state, ids);
    expect(executionsNotOnce(docs, runs)).toEqual([]);
    // Both workers did work before one was killed, and the survivor finished what was left.
    const pids = new Set(runs.map((r) => r.pid));
    for (const w of workers) expect(pids, `step runs by pid ${w.child.pid}`).toContain(w.child.pid);
    expect(workers[1]!.child.exitCode).toBeNull();
    expect(orchestrators[1]!.child.exitCode).toBeNull();

    // Every client saw every event, in order, as the store holds them, ending with the job's final status.
    const seen = await Promise.all(streams);
    const store = await state.store();
    for (const [i, id] of ids.entries()) {
      const stored = await store.events(id);
      expect(
        seen[i]!.map((e) => e.id),
        id,
      ).toEqual(stored.map((e) => e.id));
      expect(seen[i]!.at(-1)?.data.status, id).toBe((docs[i] as JobDocument).status);
    }
  },
);
