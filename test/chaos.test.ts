/**
 * SIGKILL chaos: 30 jobs in flight; the orchestrator is killed twice at random moments and a worker once, each
 * restarted. Every job must reach its expected outcome, none may be lost, and no step whose execution had succeeded
 * (a `succeeded` row in step_runs, written once BullMQ holds the task's result) may be executed again.
 */
import path from 'node:path';
import { afterAll, expect, test } from 'vitest';
import type { JobDocument } from '../src/lib/types.js';
import { createProducer } from '../src/queue/producer.js';
import {
  acceptedOutcomes,
  CORPUS,
  dropPrefix,
  executionsNotOnce,
  fastRecoveryEnv,
  isTerminal,
  manifest,
  outcomeOf,
  ServiceProcess,
  stepRuns,
  storedJob,
  TestState,
  TEST_REDIS_URL,
  uniquePrefix,
} from './helpers.js';

const prefix = uniquePrefix('chaos');
const state = await TestState.create('chaos');
const running: ServiceProcess[] = [];
const env = { ...fastRecoveryEnv(state, prefix), LOG_LEVEL: 'warn' };

function start(role: 'orchestrator' | 'worker'): ServiceProcess {
  const p = new ServiceProcess(['--role', role], { ...env, LOG_LEVEL: 'info' });
  running.push(p);
  return p;
}

const pause = (min: number, max: number) => new Promise((r) => setTimeout(r, min + Math.random() * (max - min)));

afterAll(async () => {
  await Promise.all(running.map((p) => p.stop()));
  await dropPrefix(TEST_REDIS_URL, prefix);
  await state.drop();
});

test('30 jobs survive two orchestrator kills and a worker kill', { timeout: 300_000 }, async () => {
  // A mix of every kind, good and bad; 30 jobs.
  const rows = manifest().filter((r) => !r.path.startsWith('image/iphone'));
  const jobs = Array.from({ length: 30 }, (_, i) => ({ row: rows[(i * 7) % rows.length]!, jobId: `chaos-${i}` }));

  let orchestrator = await start('orchestrator').ready();
  let worker = await start('worker').ready();
  const producer = createProducer({ redisUrl: TEST_REDIS_URL, prefix });
  for (const { row, jobId } of jobs) await producer.enqueueJob({ jobId, file: { path: path.join(CORPUS, row.path) } });
  await producer.close();

  const ids = jobs.map((j) => j.jobId);
  const kills: string[] = [];
  const unfinishedAtKill: number[] = [];
  const unfinished = async (): Promise<number> =>
    (await Promise.all(ids.map((id) => storedJob(state, id)))).filter(
      (doc) => !doc || doc.status === 'queued' || doc.status === 'running',
    ).length;
  const runCount = async (): Promise<number> => (await stepRuns(state, ids)).length;
  await pause(500, 2500);
  unfinishedAtKill.push(await unfinished());
  orchestrator.kill('SIGKILL');
  kills.push(`orchestrator after ${await runCount()} step runs`);
  orchestrator = await start('orchestrator').ready();

  await pause(500, 2500);
  unfinishedAtKill.push(await unfinished());
  worker.kill('SIGKILL');
  kills.push(`worker after ${await runCount()} step runs`);
  worker = await start('worker').ready();

  await pause(500, 2500);
  unfinishedAtKill.push(await unfinished());
  orchestrator.kill('SIGKILL');
  kills.push(`orchestrator after ${await runCount()} step runs`);
  orchestrator = await start('orchestrator').ready();

  const deadline = Date.now() + 240_000;
  const docs = new Map<string, JobDocument>();
  while (docs.size < jobs.length) {
    for (const { jobId } of jobs) {
      const doc = await storedJob(state, jobId);
      if (isTerminal(doc)) docs.set(jobId, doc);
    }
    if (Date.now() > deadline) {
      const missing = jobs.filter((j) => !docs.has(j.jobId)).map((j) => j.jobId);
      throw new Error(`lost jobs ${missing.join(', ')} (kills: ${kills.join('; ')})\n${orchestrator.log.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }

  for (const { row, jobId } of jobs) {
    const doc = docs.get(jobId)!;
    expect(doc.error?.code, `${jobId} ${row.path}`).not.toBe('INTERNAL');
    expect(acceptedOutcomes(row), `${jobId} ${row.path}: ${JSON.stringify(doc.error)}`).toContain(outcomeOf(doc));
  }
  const runs = await stepRuns(state, ids);
  expect(executionsNotOnce([...docs.values()], runs), `kills: ${kills.join('; ')}`).toEqual([]);
  // The kills really hit jobs in flight.
  expect(
    unfinishedAtKill.every((n) => n > 0),
    `unfinished at each kill: ${unfinishedAtKill.join(', ')}`,
  ).toBe(true);
});
