/**
 * Human review: a job that asks for it (or whose picture carries a label its instructions send to review) stops
 * before it finishes, as a LangGraph interrupt in its checkpoint. It waits through a SIGKILL of the service, holds no
 * worker, and resumes with the decision: approve finishes it with no step run again, reject ends it `rejected` and
 * delivers its webhook. Decisions are checked: 400 for anything but approve/reject, 409 for a job not waiting, and
 * of two decisions at once exactly one wins.
 */
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { freePort } from '../src/lib/net.js';
import { createProducer } from '../src/queue/producer.js';
import type { JobDocument } from '../src/lib/types.js';
import {
  CORPUS,
  dropPrefix,
  executionsNotOnce,
  ServiceProcess,
  stepRuns,
  storedJob,
  TEST_REDIS_URL,
  TestState,
  uniquePrefix,
  waitFor,
} from './helpers.js';

const TOKEN = 'review-token-0123456789abcdef';
const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
const prefix = uniquePrefix('review');
let state: TestState;
let service: ServiceProcess;
let port: number;
let base: string;
let receiver: http.Server;
let receiverUrl: string;
const delivered: { jobId: string; status: string }[] = [];

const env = (): Record<string, string> => ({
  ...state.env,
  REDIS_URL: TEST_REDIS_URL,
  QUEUE_PREFIX: prefix,
  INPUT_ROOTS: CORPUS,
  PORT: String(port),
  API_TOKEN: TOKEN,
  WEBHOOK_ALLOW_PRIVATE: 'true',
  AI_PROVIDERS: 'vision=off',
});

beforeAll(async () => {
  state = await TestState.create('review');
  port = await freePort();
  base = `http://127.0.0.1:${port}`;
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const doc = JSON.parse(body) as JobDocument;
      delivered.push({ jobId: doc.id, status: doc.status });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`;
  service = await new ServiceProcess([], env()).ready();
}, 120_000);

afterAll(async () => {
  await service?.stop();
  receiver?.close();
  await dropPrefix(TEST_REDIS_URL, prefix);
  await state?.drop();
});

async function create(file: string, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await fetch(`${base}/jobs`, {
    method: 'POST',
    headers: auth,
    body: JSON.stringify({ file: { path: path.join(CORPUS, file) }, ...extra }),
  });
  expect(res.status).toBe(202);
  return ((await res.json()) as JobDocument).id;
}

const statusOf = async (id: string): Promise<string | undefined> => (await storedJob(state, id))?.status;
const until = (id: string, status: string, timeoutMs = 90_000) =>
  waitFor(`job ${id} to be ${status}`, async () => ((await statusOf(id)) === status ? true : null), timeoutMs);
const decide = (id: string, body: unknown) =>
  fetch(`${base}/jobs/${id}/review`, { method: 'POST', headers: auth, body: JSON.stringify(body) });

test('a job that asked for review waits through a SIGKILL; approved, it finishes and no step runs twice', async () => {
  const id = await create('image/320x240.jpg', { instructions: { review: { when: 'always' } } });
  await until(id, 'awaiting_review');
  const waiting = (await storedJob(state, id))!;
  expect(waiting.review?.reason).toBe('the job asked for review');
  expect(Date.parse(waiting.review?.requestedAt ?? '')).not.toBeNaN();
  expect(waiting.steps.generateThumbnails?.status).toBe('succeeded');
  // The reviewer sees what the steps made: the type, the file's identity, the thumbnails.
  expect(waiting.fileType).toBe('image');
  expect(waiting.file.sha256).toMatch(/^[0-9a-f]{64}$/);
  expect(waiting.results.thumbnails?.length).toBeGreaterThan(0);
  const runsBefore = await stepRuns(state, id);
  // Waiting holds no worker: nothing of the job is active in any queue.
  const jobs = createProducer({ redisUrl: TEST_REDIS_URL, prefix });
  try {
    expect(await jobs.queue.getActiveCount()).toBe(0);
  } finally {
    await jobs.close();
  }
  expect(await (await fetch(`${base}/metrics`)).text()).toMatch(/^media_jobs\{status="awaiting_review"\} [1-9]/m);

  // The whole service killed and started again: the job still waits, and nothing runs for it.
  service.kill('SIGKILL');
  await service.exited;
  // While it is down, a job whose message was lost: only the sweep moves it on, so once it has finished the restarted
  // service has swept its store (and could have moved the waiting job on too).
  const stranded = 'stranded-beside-review';
  await (await state.store()).createOrGet({ jobId: stranded, file: { path: path.join(CORPUS, 'image/320x240.jpg') } });
  service = await new ServiceProcess([], { ...env(), SWEEP_INTERVAL_MS: '1000' }).ready();
  await until(stranded, 'completed');
  expect(await storedJob(state, id)).toEqual(waiting);
  expect(await stepRuns(state, id)).toHaveLength(runsBefore.length);

  const approved = await decide(id, { decision: 'approve', note: 'looks fine' });
  expect(approved.status).toBe(202);
  await until(id, 'completed');
  const done = (await storedJob(state, id))!;
  expect(done.review).toMatchObject({ decision: 'approve', note: 'looks fine' });
  expect(Date.parse(done.review?.decidedAt ?? '')).not.toBeNaN();
  const runs = await stepRuns(state, id);
  expect(runs).toHaveLength(runsBefore.length);
  expect(executionsNotOnce([done], runs)).toEqual([]);
  // Decided once: a second decision is a conflict.
  expect((await decide(id, { decision: 'reject' })).status).toBe(409);
}, 240_000);

test('decisions are checked, of two at once one wins, and the decided job ends with its webhook', async () => {
  const id = await create('pdf/three-pages.pdf', {
    instructions: { review: { when: 'always' } },
    notifyUrl: receiverUrl,
  });
  await until(id, 'awaiting_review');
  expect(delivered.filter((d) => d.jobId === id)).toEqual([]);

  expect((await decide(id, { decision: 'maybe' })).status).toBe(400);
  expect((await decide(id, { decision: 'approve', extra: 1 })).status).toBe(400);
  expect(
    (
      await fetch(`${base}/jobs/${id}/review`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ decision: 'reject' }),
      })
    ).status,
  ).toBe(401);

  // Two decisions at once: exactly one wins (both reject, with notes of their own: the note says which).
  const answers = await Promise.all([
    decide(id, { decision: 'reject', note: 'first reviewer' }),
    decide(id, { decision: 'reject', note: 'second reviewer' }),
  ]);
  expect(answers.map((a) => a.status).sort()).toEqual([202, 409]);
  const winner = answers[0].status === 202 ? 'first reviewer' : 'second reviewer';
  await until(id, 'rejected');
  const doc = (await storedJob(state, id))!;
  expect(doc.review).toMatchObject({ decision: 'reject', note: winner });
  await waitFor('the webhook of the decided job', () => delivered.some((d) => d.jobId === id), 30_000);
  expect(delivered.filter((d) => d.jobId === id)).toEqual([{ jobId: id, status: doc.status }]);
}, 240_000);

test('a job waiting for its review can be cancelled: it ends cancelled, keeping what its steps made', async () => {
  const id = await create('image/320x240.jpg', { instructions: { review: { when: 'always' } } });
  await until(id, 'awaiting_review');
  const res = await fetch(`${base}/jobs/${id}/cancel`, {
    method: 'POST',
    headers: { authorization: auth.authorization },
  });
  expect(res.status).toBe(202);
  await until(id, 'cancelled');
  const doc = (await storedJob(state, id))!;
  expect(doc.results.thumbnails?.length).toBeGreaterThan(0);
  expect((await decide(id, { decision: 'approve' })).status).toBe(409);

  // Retried, it waits for its review again, and a second cancellation ends it again (each has a run of its own).
  const retried = await fetch(`${base}/jobs/${id}/retry`, {
    method: 'POST',
    headers: { authorization: auth.authorization },
  });
  expect(retried.status).toBe(202);
  await until(id, 'awaiting_review');
  const again = await fetch(`${base}/jobs/${id}/cancel`, {
    method: 'POST',
    headers: { authorization: auth.authorization },
  });
  expect(again.status).toBe(202);
  await until(id, 'cancelled', 30_000);
}, 180_000);

test('a job that does not ask for review is not held; a review of it is 409', async () => {
  const id = await create('image/320x240.jpg');
  await until(id, 'completed');
  expect((await storedJob(state, id))!.review).toBeUndefined();
  expect((await decide(id, { decision: 'approve' })).status).toBe(409);
  expect((await decide('no-such-job', { decision: 'approve' })).status).toBe(404);
}, 120_000);

test('REVIEW_TIMEOUT decides a review nobody answers, as it says', async () => {
  await service.stop();
  service = await new ServiceProcess([], { ...env(), REVIEW_TIMEOUT: '1500:reject' }).ready();
  const id = await create('image/320x240.jpg', { instructions: { review: { when: 'always' } } });
  await until(id, 'awaiting_review');
  await until(id, 'rejected', 30_000);
  const doc = (await storedJob(state, id))!;
  expect(doc.review).toMatchObject({ decision: 'reject' });
  expect(doc.review?.note).toMatch(/REVIEW_TIMEOUT \(1500 ms\)/);
}, 120_000);
