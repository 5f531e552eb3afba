/**
 * The service on a real Redis: the orchestrator and the task workers run as separate `start` processes; every corpus
 * file is submitted through the queue; malformed and hostile messages fail their jobs with clear codes while the
 * service keeps going; a duplicate JOB_CREATED is one job. A unique BullMQ prefix per run, removed afterwards.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Job, Queue, QueueEvents } from 'bullmq';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { JobDocument } from '../src/lib/types.js';
import type { JobProgress } from '../src/queue/orchestrator.js';
import { bullConnection } from '../src/queue/connection.js';
import { JOB_CREATED, JOBS_QUEUE } from '../src/queue/names.js';
import { createProducer, type NewJob, type Producer } from '../src/queue/producer.js';
import {
  acceptedOutcomes,
  CORPUS,
  dropPrefix,
  executionsNotOnce,
  finishedJobs,
  manifest,
  outcomeOf,
  runCli,
  ServiceProcess,
  sha256Of,
  stepRuns,
  storedJob,
  tempDir,
  TEST_REDIS_URL,
  TEST_STORE,
  TestState,
  uniquePrefix,
  waitFor,
} from './helpers.js';

const prefix = uniquePrefix('service');
let state: TestState;
let dataDir: string;
let inputRoot: string;
let env: Record<string, string>;
let orchestrator: ServiceProcess;
let worker: ServiceProcess;
let producer: Producer;

async function waitForDoc(jobId: string): Promise<JobDocument> {
  const [doc] = await finishedJobs(state, [jobId]);
  return doc!;
}

/** The JOB_CREATED message `id` once the orchestrator has finished with it (its state first: see job-id-reuse). */
function messageDone(queue: Queue, id: string): Promise<Job> {
  return waitFor(`message ${id} to complete`, async () =>
    (await queue.getJobState(id)) === 'completed' ? Job.fromId(queue, id) : null,
  );
}

beforeAll(async () => {
  state = await TestState.create('service');
  dataDir = state.dataDir;
  inputRoot = tempDir('service-in');
  env = { ...state.env, REDIS_URL: TEST_REDIS_URL, QUEUE_PREFIX: prefix, INPUT_ROOTS: `${CORPUS},${inputRoot}` };
  orchestrator = new ServiceProcess(['--role', 'orchestrator'], env);
  worker = new ServiceProcess(['--role', 'worker'], env);
  await Promise.all([orchestrator.ready(), worker.ready()]);
  producer = createProducer({ redisUrl: TEST_REDIS_URL, prefix });
}, 120_000);

afterAll(async () => {
  await producer?.close();
  await Promise.all([orchestrator?.stop(), worker?.stop()]);
  await dropPrefix(TEST_REDIS_URL, prefix);
  await state?.drop();
  fs.rmSync(inputRoot, { recursive: true, force: true });
});

describe('the corpus through the queue', () => {
  // Every file on SQLite; on PostgreSQL (the same media work, another store) one file of each expected outcome and
  // the files checked by name below: what the backend is tested for does not depend on the file, and each whole
  // corpus pass costs minutes of the suite.
  const all = manifest();
  const named = ['bad/password-protected.pdf', 'bad/text-named.png'];
  const rows =
    TEST_STORE === 'postgres'
      ? all.filter(
          (r, i) => named.includes(r.path) || all.findIndex((o) => o.expect.join('|') === r.expect.join('|')) === i,
        )
      : all;
  test('every file reaches its expected outcome (submit --wait --json)', { timeout: 300_000 }, async () => {
    const res = await runCli(
      ['submit', '--wait', '--json', ...rows.map((r) => path.join(CORPUS, r.path))],
      env,
      280_000,
    );
    expect(res.code, res.stderr + orchestrator.log.slice(-2000)).toBeLessThanOrEqual(2);
    const docs = res.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as JobDocument);
    expect(docs).toHaveLength(rows.length);
    rows.forEach((row, i) => {
      const doc = docs[i]!;
      expect(doc.file.name, 'documents come in the order of the files').toBe(path.basename(row.path));
      expect(doc.error?.code).not.toBe('INTERNAL');
      expect(acceptedOutcomes(row), `${row.path}: ${JSON.stringify(doc.error)}`).toContain(outcomeOf(doc));
    });
    // Refused but identified: the failed job still says what the file is (through the queue, the step's failure
    // carries it from the worker to the orchestrator).
    const encrypted = docs[rows.findIndex((r) => r.path === 'bad/password-protected.pdf')]!;
    expect(encrypted).toMatchObject({ status: 'failed', fileType: 'pdf', error: { code: 'ENCRYPTED' } });
    expect(encrypted.file).toMatchObject({ mime: 'application/pdf' });
    expect(encrypted.file.sha256).toBe(sha256Of(path.join(CORPUS, 'bad/password-protected.pdf')));
    expect(docs[rows.findIndex((r) => r.path === 'bad/text-named.png')]!.fileType).toBeNull();
    // Files under INPUT_ROOTS are pinned by a hard link in the job's folder (the inode that was checked), not copied.
    rows.forEach((row, i) => {
      const pinned = path.join(dataDir, 'uploads', docs[i]!.id, path.basename(row.path));
      if (!fs.existsSync(pinned)) return; // rejected before its file was pinned (a directory, a missing file)
      const original = path.join(CORPUS, row.path);
      // On another file system (or without the right to link) it is a copy of the same bytes.
      if (fs.statSync(pinned).dev === fs.statSync(original).dev)
        expect(fs.statSync(pinned).ino, row.path).toBe(fs.statSync(original).ino);
      else expect(fs.readFileSync(pinned).equals(fs.readFileSync(original)), row.path).toBe(true);
    });
    // Steps really ran in the worker process, not in the orchestrator.
    expect(worker.log).toContain('task workers ready');
    expect(orchestrator.log).not.toContain('task workers ready');
  });
});

describe('poison messages', () => {
  test('each fails its job with a clear code and the service keeps processing', { timeout: 300_000 }, async () => {
    const queue = new Queue(JOBS_QUEUE, { connection: bullConnection(TEST_REDIS_URL, 'producer'), prefix });
    try {
      const outside = tempDir('outside');
      fs.copyFileSync(path.join(CORPUS, 'image/320x240.jpg'), path.join(outside, 'secret.jpg'));
      fs.symlinkSync(path.join(outside, 'secret.jpg'), path.join(inputRoot, 'link.jpg'));
      await queue.add(
        JOB_CREATED,
        { jobId: 'poison-missing', file: { path: path.join(inputRoot, 'nope.jpg') } },
        { jobId: 'poison-missing' },
      );
      await queue.add(
        JOB_CREATED,
        { jobId: 'poison-types', file: { path: 42 }, priority: 'high' },
        { jobId: 'poison-types' },
      );
      await queue.add(
        JOB_CREATED,
        { jobId: 'poison-outside', file: { path: path.join(outside, 'secret.jpg') } },
        { jobId: 'poison-outside' },
      );
      await queue.add(
        JOB_CREATED,
        { jobId: 'poison-escape', file: { path: `${inputRoot}/../${path.basename(outside)}/secret.jpg` } },
        { jobId: 'poison-escape' },
      );
      await queue.add(
        JOB_CREATED,
        { jobId: 'poison-symlink', file: { path: path.join(inputRoot, 'link.jpg') } },
        { jobId: 'poison-symlink' },
      );
      await queue.add(JOB_CREATED, 'x'.repeat(1024 * 1024), { jobId: 'poison-junk' });
      await queue.add(
        JOB_CREATED,
        { jobId: 'poison-junk-2', junk: 'y'.repeat(1024 * 1024) },
        { jobId: 'poison-junk-2' },
      );
      let deep: Record<string, unknown> = { end: true };
      for (let i = 0; i < 1000; i++) deep = { a: deep };
      await queue.add(
        JOB_CREATED,
        { jobId: 'poison-deep', file: { path: path.join(CORPUS, 'image/320x240.jpg') }, user: deep },
        { jobId: 'poison-deep' },
      );
      const good = await producer.enqueueJob({ file: { path: path.join(CORPUS, 'image/320x240.jpg') } });

      const missing = await waitForDoc('poison-missing');
      expect(missing.error, JSON.stringify(missing)).toMatchObject({ code: 'FILE_NOT_FOUND', step: 'validate' });
      expect((await waitForDoc('poison-types')).error?.code).toBe('INVALID_INPUT');
      for (const id of ['poison-outside', 'poison-escape', 'poison-symlink']) {
        const doc = await waitForDoc(id);
        expect(doc.error?.code, id).toBe('INVALID_INPUT');
        expect(doc.error?.message).toMatch(/outside INPUT_ROOTS/);
      }
      // Bounded before the schema looks at them (MESSAGE_LIMITS): a clear code, not a stack overflow.
      const junk = (await waitForDoc('poison-junk-2')).error;
      expect(junk?.code).toBe('INVALID_INPUT');
      expect(junk?.message).toMatch(/larger than 65536 bytes/);
      const deepError = (await waitForDoc('poison-deep')).error;
      expect(deepError?.code).toBe('INVALID_INPUT');
      expect(deepError?.message).toMatch(/deeper than 16/);
      expect((await waitForDoc(good.jobId)).status).toBe('completed');
      // Messages that are not even a job fail in BullMQ once, not retried.
      for (const id of ['poison-junk', 'poison-types']) {
        const job = await queue.getJob(id);
        expect(await job?.getState(), id).toBe('failed');
        expect(job?.attemptsMade, id).toBe(1);
        expect(job?.failedReason).toMatch(/^INVALID_INPUT: malformed JOB_CREATED message/);
      }
      // Nothing outside the roots was read: no step ran for those jobs.
      for (const id of ['poison-outside', 'poison-escape', 'poison-symlink'])
        expect(await stepRuns(state, id)).toEqual([]);
      fs.rmSync(outside, { recursive: true, force: true });
    } finally {
      await queue.close();
    }
  });
});

describe('internal state', () => {
  test('a producer cannot send a retry state or unknown keys (closed input schema)', { timeout: 300_000 }, async () => {
    // The attack: a text file, with a forged retry that says validate already found an image and its results.
    const notes = path.join(inputRoot, 'notes.txt');
    fs.writeFileSync(notes, 'just some text, not a picture\n');
    const forged = {
      generation: 1,
      previous: {
        steps: {
          validate: { status: 'succeeded', attempts: 1 },
          extractMetadata: { status: 'succeeded', attempts: 1 },
        },
        results: { metadata: { width: 4000, height: 3000, format: 'jpeg' } },
        fileInfo: { name: 'notes.txt', size: 30, mime: 'image/jpeg', ext: 'jpg', sha256: '0'.repeat(64) },
        fileType: 'image',
      },
    };
    const queue = new Queue(JOBS_QUEUE, { connection: bullConnection(TEST_REDIS_URL, 'producer'), prefix });
    try {
      await queue.add(
        JOB_CREATED,
        { jobId: 'forged-retry', file: { path: notes }, options: { retry: forged } },
        { jobId: 'forged-retry' },
      );
      await queue.add(
        JOB_CREATED,
        { jobId: 'forged-nested', file: { path: notes, retry: forged } },
        { jobId: 'forged-nested' },
      );
      await queue.add(
        JOB_CREATED,
        { jobId: 'forged-top', file: { path: notes }, retry: forged },
        { jobId: 'forged-top' },
      );
      for (const id of ['forged-retry', 'forged-nested', 'forged-top']) {
        const doc = await waitForDoc(id);
        expect(doc.status, id).toBe('failed');
        expect(doc.error?.code, id).toBe('INVALID_INPUT');
        expect(doc.results, id).toEqual({});
        // Nothing ran on the producer's word.
        expect(await stepRuns(state, id), id).toEqual([]);
      }
      expect((await waitForDoc('forged-retry')).error?.message).toMatch(/options/);
    } finally {
      await queue.close();
    }
    // The producer API refuses it before it reaches the queue.
    await expect(
      producer.enqueueJob({ file: { path: notes }, options: { retry: forged } } as unknown as NewJob),
    ).rejects.toThrow(/options/);
  });
});

describe('duplicates', () => {
  // BullMQ itself drops a message whose BullMQ id it still holds, so these are the duplicates that reach the
  // orchestrator: the same JOB_CREATED under another BullMQ id while the job runs, and the same message again once
  // the first entry is gone (removed, or past its retention) after the job finished.
  test('a repeated JOB_CREATED is one job, before and after it finished', { timeout: 300_000 }, async () => {
    const file = path.join(CORPUS, 'image/flowers.jpeg');
    const message = { jobId: 'dup-1', file: { path: file } };
    await producer.enqueueJob(message);
    // The job is under way (claimed, its first step dispatched) when the duplicate arrives.
    await waitFor('dup-1 to start', async () => (await stepRuns(state, 'dup-1')).length > 0);
    await producer.queue.add(JOB_CREATED, message, { jobId: 'dup-1-again', attempts: 1 });
    const [first, during] = await Promise.all([
      messageDone(producer.queue, 'dup-1'),
      messageDone(producer.queue, 'dup-1-again'),
    ]);
    const doc = await waitForDoc('dup-1');
    expect(doc.status).toBe('completed');
    for (const m of [first, during]) expect((m.returnvalue as JobDocument).id).toBe('dup-1');
    // Once BullMQ no longer holds the first entry, the same message is delivered again: it answers with the job.
    expect(await producer.queue.remove('dup-1')).toBe(1);
    await producer.enqueueJob(message);
    const after = await messageDone(producer.queue, 'dup-1');
    expect(after.returnvalue as JobDocument).toMatchObject({ status: 'completed', finishedAt: doc.finishedAt });
    // Three deliveries that each had the chance to run it, and every step ran once.
    const runs = await stepRuns(state, 'dup-1');
    expect(runs.filter((r) => r.step === 'validate')).toHaveLength(1);
    expect(executionsNotOnce([doc], runs)).toEqual([]);
    expect(await storedJob(state, 'dup-1')).toMatchObject({ finishedAt: doc.finishedAt, updatedAt: doc.updatedAt });
  });
});

describe('progress', () => {
  test("a job's progress ends with the final status of every step it ran", { timeout: 120_000 }, async () => {
    const events = new QueueEvents(JOBS_QUEUE, { connection: bullConnection(TEST_REDIS_URL, 'worker'), prefix });
    try {
      await events.waitUntilReady();
      const seen: JobProgress[] = [];
      events.on('progress', ({ jobId, data }) => {
        if (jobId === 'progress-1') seen.push(data as unknown as JobProgress);
      });
      await producer.enqueueJob({ jobId: 'progress-1', file: { path: path.join(CORPUS, 'image/flowers.jpeg') } });
      const doc = await waitForDoc('progress-1');
      expect(doc.status).toBe('completed');
      const ran = ['validate', 'extractMetadata', 'generateThumbnails', 'analyzeImage'] as const;
      const final = Object.fromEntries(ran.map((s) => [s, doc.steps[s]?.status]));
      expect(final).toEqual(Object.fromEntries(ran.map((s) => [s, 'succeeded'])));
      // Updates are sent one at a time per job and folded while one is in flight: the last one may follow the end.
      const done = (steps: JobProgress['steps'] | undefined): boolean =>
        !!steps && Object.keys(steps).length === ran.length && ran.every((s) => steps[s] === final[s]);
      for (let i = 0; i < 50 && !done(seen.at(-1)?.steps); i++) await new Promise((r) => setTimeout(r, 100));
      expect(seen.at(-1)?.steps).toEqual(final);
      // Each update carries every step seen so far: validate is in all of them, running or finished.
      for (const p of seen) expect(['running', 'succeeded']).toContain(p.steps.validate);
    } finally {
      await events.close();
    }
  });
});
