/**
 * Plugin steps (PLUGINS): loaded and checked at start-up, run through the same graph, dispatch, retries, time limits
 * and checkpoints as the built-in steps. In-process runs use the real step threads; the service runs use real Redis,
 * a worker that takes only the plugin's queue, and a SIGKILL of that worker while the plugin runs.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';
import { toMermaid } from '../src/graph/mermaid.js';
import { loadWorkflow } from '../src/graph/workflow.js';
import { freePort } from '../src/lib/net.js';
import { createLogger } from '../src/lib/log.js';
import type { Instructions } from '../src/lib/instructions.js';
import type { JobDocument, PluginStepName, StepRecord } from '../src/lib/types.js';
import { createRuntime, type Runtime } from '../src/runtime.js';
import {
  CORPUS,
  dropPrefix,
  executionsNotOnce,
  fastRecoveryEnv,
  isTerminal,
  ROOT,
  runCli,
  ServiceProcess,
  stepRuns,
  storedJob,
  TEST_REDIS_URL,
  TestState,
  uniquePrefix,
  waitFor,
} from './helpers.js';

const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'plugins');
const STEPS = path.join(FIXTURES, 'steps.mjs');
const PHOTO = path.join(CORPUS, 'image/320x240.jpg');
const stepOf = (doc: JobDocument, name: string): StepRecord | undefined => doc.steps[name as PluginStepName];

describe('a plugin module that does not fit stops start-up with its name and the problem', () => {
  const problemOf = async (file: string): Promise<string> => {
    const err = await loadWorkflow({ plugins: [path.join(FIXTURES, file)] }).then(
      () => new Error('loaded'),
      (e: unknown) => e as Error,
    );
    expect(err.name).toBe('PluginLoadError');
    expect(err.message).toContain(file);
    return err.message;
  };

  test.each([
    ['empty.mjs', /exports nothing/],
    ['throws.mjs', /could not be loaded: the scanner library is missing/],
    ['cycle.mjs', /steps (first → second → first|second → first → second) form a cycle/],
    ['unknown-anchor.mjs', /step late comes after ocrEverything, which is no step/],
    ['builtin-name.mjs', /step summarize: the name is a built-in step's/],
    ['wrong-type.mjs', /step frames runs for video, but generateThumbnails runs only for image/],
    ['duplicate.mjs', /step twin is already defined by .*duplicate\.mjs/],
    ['missing.mjs', /could not be loaded/],
  ])('%s', async (file, problem) => {
    expect(await problemOf(file)).toMatch(problem);
  });

  test('`start` exits 1 with the message, before it opens anything', async () => {
    const res = await runCli(['start', '--role', 'worker'], { PLUGINS: path.join(FIXTURES, 'cycle.mjs') }, 60_000);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/PLUGINS: start-up stopped:\n {2}- .*cycle\.mjs: steps .* form a cycle/);
    expect(res.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('plugin steps in a job, in this process', () => {
  let state: TestState;
  let runtime: Runtime;
  let n = 0;
  const run = (instructions?: Instructions): Promise<JobDocument> =>
    runtime.runner.run({ jobId: `plugin-${++n}`, file: { path: PHOTO }, ...(instructions && { instructions }) });

  beforeAll(async () => {
    state = await TestState.create('plugins');
    const config = loadConfig({ ...state.env, PLUGINS: STEPS, AI_PROVIDERS: 'vision=off', RETRY_BACKOFF_MS: '50' });
    runtime = await createRuntime(config, createLogger('silent'));
  }, 60_000);

  afterAll(async () => {
    await runtime?.close();
    await state?.drop();
  });

  test("a plugin's result is in the job document, its artifact in the job's, and its step in the drawing", async () => {
    const doc = await run();
    expect(doc.status).toBe('completed');
    expect(stepOf(doc, 'stamp')).toMatchObject({ status: 'succeeded', attempts: 1 });
    const thumbnails = doc.results.thumbnails?.length;
    expect(thumbnails).toBeGreaterThan(0);
    expect(doc.results.stamp).toEqual({
      thumbnails,
      mime: 'image/jpeg',
      url: `/jobs/${doc.id}/artifacts/stamp.txt`,
      attempt: 1,
    });
    // A plugin after a plugin sees the first one's result.
    expect(doc.results.grade).toEqual({ grade: 'A', stampedThumbnails: thumbnails });
    expect(doc.results.stall).toEqual({ hung: false });
    expect(await runtime.deps.artifacts.readText(doc.id, 'stamp.txt')).toBe(`${doc.id} image/jpeg ${thumbnails}\n`);
    const stored = await storedJob(state, doc.id);
    expect(stored?.results.stamp).toEqual(doc.results.stamp);

    const mermaid = await toMermaid(runtime.workflow);
    expect(mermaid).toMatch(/^\s*stamp\(stamp\)$/m);
    expect(mermaid).toMatch(/^\s*generateThumbnails -\.-> stamp;$/m);
    expect(mermaid).toMatch(/^\s*stamp -\.-> grade;$/m);
    expect(mermaid).toMatch(/^\s*extractMetadata -\.-> stall;$/m);
  }, 120_000);

  test('a required plugin that fails with its own code fails the job with it, at once; its followers are skipped', async () => {
    const doc = await run({ steps: { stamp: { fail: true } } });
    expect(doc.status).toBe('failed');
    expect(doc.error).toEqual({ code: 'STAMP_REFUSED', message: 'the stamp was refused', step: 'stamp' });
    // Not retryable unless it says so: one attempt of its two.
    expect(stepOf(doc, 'stamp')).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'STAMP_REFUSED' } });
    expect(stepOf(doc, 'grade')).toMatchObject({ status: 'skipped', reason: 'stamp failed' });
    expect(doc.results.stamp).toBeUndefined();
    expect(await runtime.deps.artifacts.readText(doc.id, 'stamp.txt')).toBeNull();
  }, 120_000);

  test('an optional plugin that fails, and one that hangs past its time limit: completed_with_errors', async () => {
    const doc = await run({ steps: { grade: { fail: true }, stall: { hang: true } } });
    expect(doc.status).toBe('completed_with_errors');
    expect(doc.error).toBeNull();
    expect(stepOf(doc, 'grade')).toMatchObject({ status: 'failed', error: { code: 'GRADE_LOW', step: 'grade' } });
    // A busy loop no signal reaches: the thread running it is terminated at its 1.5 s limit.
    expect(stepOf(doc, 'stall')).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'TIMEOUT' } });
    expect(stepOf(doc, 'stall')?.error?.message).toMatch(/took longer than 1500 ms/);
    expect(doc.results.stamp).toBeDefined();
  }, 120_000);

  test('skip leaves a plugin step out, with the steps after it', async () => {
    const doc = await run({ skip: ['stamp'] });
    expect(doc.status).toBe('completed');
    expect(stepOf(doc, 'stamp')).toMatchObject({ status: 'skipped', reason: "left out by the job's instructions" });
    expect(stepOf(doc, 'grade')).toMatchObject({ status: 'skipped', reason: 'stamp was left out' });
    expect(doc.results.stamp).toBeUndefined();
    expect((await runtime.store.runs(doc.id)).map((r) => r.step)).not.toContain('stamp');
  }, 120_000);

  test('a skip or options for a step this service does not have, or options its schema refuses: INVALID_INPUT', async () => {
    const unknown = await run({ skip: ['virusScan'] });
    expect(unknown.error).toMatchObject({ code: 'INVALID_INPUT', step: 'validate' });
    expect(unknown.error?.message).toMatch(/skip: virusScan is no step/);
    const refused = await run({ steps: { stamp: { sleepMs: 'long' } } });
    expect(refused.error).toMatchObject({ code: 'INVALID_INPUT', step: 'validate' });
    expect(refused.error?.message).toMatch(/steps\.stamp: sleepMs/);
  }, 120_000);
});

describe('plugin steps on their own queue', () => {
  let state: TestState;
  const prefix = uniquePrefix('plugins');
  const services: ServiceProcess[] = [];

  beforeAll(async () => {
    state = await TestState.create('plugins-queued');
  });

  afterAll(async () => {
    for (const s of services) await s.stop();
    await dropPrefix(TEST_REDIS_URL, prefix);
    await state?.drop();
  });

  test('a worker started with --queues takes only those; killed in the plugin step, the job resumes and records it once', async () => {
    const env = { ...fastRecoveryEnv(state, prefix), PLUGINS: STEPS, AI_PROVIDERS: 'vision=off' };
    // Every role, every queue but the plugin's.
    const port = await freePort();
    const main = await new ServiceProcess(['--queues', 'light,image,video,document,ai'], {
      ...env,
      PORT: String(port),
    }).ready();
    services.push(main);
    const base = `http://127.0.0.1:${port}`;
    const res = await fetch(`${base}/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ file: { path: PHOTO }, instructions: { steps: { stamp: { sleepMs: 6000 } } } }),
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as JobDocument;

    // The built-in steps run; the stamp task waits on its queue, which no worker takes.
    await waitFor(
      'the thumbnails',
      async () => (await storedJob(state, id))?.steps.generateThumbnails?.status === 'succeeded',
    );
    const graph = await (await fetch(`${base}/graph`)).text();
    expect(graph).toMatch(/generateThumbnails -\.-> stamp;/);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await stepRuns(state, id)).map((r) => r.step)).not.toContain('stamp');
    expect((await storedJob(state, id))?.status).toBe('running');

    const workerEnv = { ...env, PORT: '0' };
    const first = await new ServiceProcess(['--role', 'worker', '--queues', 'stamp'], workerEnv).ready();
    services.push(first);
    await waitFor('the stamp step to start', async () => (await stepRuns(state, id)).some((r) => r.step === 'stamp'));
    first.kill('SIGKILL');
    await first.exited;

    const second = await new ServiceProcess(['--role', 'worker', '--queues', 'stamp'], workerEnv).ready();
    services.push(second);
    const doc = await waitFor(
      'the job to end',
      async () => {
        const d = await storedJob(state, id);
        return isTerminal(d) ? d : null;
      },
      120_000,
    );
    expect(doc.status).toBe('completed');
    expect(doc.results.stamp).toMatchObject({ url: `/jobs/${id}/artifacts/stamp.txt`, mime: 'image/jpeg' });
    expect(doc.results.grade).toMatchObject({ grade: 'A' });

    const runs = await stepRuns(state, id);
    expect(executionsNotOnce([doc], runs)).toEqual([]);
    const stamps = runs.filter((r) => r.step === 'stamp');
    // The killed execution, then the one that finished, each on a worker of the stamp queue alone.
    expect(stamps.map((r) => r.status)).toEqual(['running', 'succeeded']);
    expect(stamps.map((r) => r.pid)).toEqual([first.child.pid, second.child.pid]);
    const others = runs.filter((r) => r.step !== 'stamp' && r.step !== 'grade' && r.step !== 'stall');
    expect(new Set(others.map((r) => r.pid))).toEqual(new Set([main.child.pid]));
    const artifacts = (await (await fetch(`${base}/jobs/${id}`)).json()) as JobDocument;
    expect(artifacts.artifacts?.filter((a) => a.name === 'stamp.txt')).toHaveLength(1);
  }, 300_000);
});
