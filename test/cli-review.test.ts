/**
 * Reviews from the command line: `submit --wait` stops at a job that waits for a person (exit 3, the reason shown,
 * the command to decide it), `review <id> approve|reject [--note]` decides it through the HTTP API or directly on
 * Redis and the store, and the job then ends as decided. A file that does not exist is one line on stderr.
 */
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { freePort } from '../src/lib/net.js';
import type { JobDocument } from '../src/lib/types.js';
import {
  CORPUS,
  dropPrefix,
  runCli,
  ServiceProcess,
  storedJob,
  TEST_REDIS_URL,
  TestState,
  uniquePrefix,
  waitFor,
} from './helpers.js';

const prefix = uniquePrefix('cli-review');
const TOKEN = 'cli-review-token-0123456789';
const photo = path.join(CORPUS, 'image/320x240.jpg');
const review = JSON.stringify({ review: { when: 'always' } });
let state: TestState;
let service: ServiceProcess;
let base: string;
/** This terminal talks to Redis and the store directly: the service's own configuration. */
let direct: Record<string, string>;
/** Another terminal, through the API only. */
let remote: Record<string, string>;

beforeAll(async () => {
  state = await TestState.create('cli-review');
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  direct = { ...state.env, REDIS_URL: TEST_REDIS_URL, QUEUE_PREFIX: prefix, INPUT_ROOTS: CORPUS };
  remote = { API_TOKEN: TOKEN, MEDIA_ORCHESTRATOR_URL: base, QUEUE_PREFIX: `${prefix}-nobody` };
  service = await new ServiceProcess([], {
    ...direct,
    PORT: String(port),
    API_TOKEN: TOKEN,
    DISABLED_STEPS: 'analyzeImage',
  }).ready();
}, 90_000);

afterAll(async () => {
  await service?.stop();
  await dropPrefix(TEST_REDIS_URL, prefix);
  await dropPrefix(TEST_REDIS_URL, `${prefix}-nobody`);
  await state?.drop();
});

async function ended(id: string): Promise<JobDocument> {
  return waitFor(`job ${id} to end after its review`, async () => {
    const doc = await storedJob(state, id);
    return doc && doc.status !== 'awaiting_review' && doc.status !== 'running' ? doc : null;
  });
}

test('through the API: submit --wait exits 3 at a review, review approve finishes the job with the note', async () => {
  const submitted = await runCli(['submit', '--wait', '--json', '--instructions', review, photo], remote, 120_000);
  expect(submitted.code, submitted.stderr).toBe(3);
  const doc = JSON.parse(submitted.stdout) as JobDocument;
  expect(doc.status).toBe('awaiting_review');
  expect(doc.review?.reason).toBeTruthy();

  // The person at the terminal sees why, and how to decide.
  const shown = await runCli(['status', doc.id], remote);
  expect(shown.code, shown.stderr).toBe(0);
  expect(shown.stdout).toContain(`awaiting: ${doc.review!.reason}`);
  expect(shown.stdout).toContain(`media-orchestrator review ${doc.id} approve|reject`);

  const approved = await runCli(['review', doc.id, 'approve', '--note', 'looks fine'], remote);
  expect(approved.code, approved.stderr).toBe(0);
  expect(approved.stdout).toContain(`job ${doc.id}: approved`);
  const final = await ended(doc.id);
  expect(final).toMatchObject({ status: 'completed', review: { decision: 'approve', note: 'looks fine' } });

  // Decided once: a second decision is refused, one line on stderr.
  const again = await runCli(['review', doc.id, 'reject'], remote);
  expect(again.code).toBe(1);
  expect(again.stderr.trim().split('\n')).toHaveLength(1);
  expect(again.stderr).toMatch(/409: CONFLICT/);
});

test('directly on Redis and the store: submit --wait exits 3, review reject ends the job rejected, status exits 2', async () => {
  const submitted = await runCli(['submit', '--wait', '--json', '--instructions', review, photo], direct, 120_000);
  expect(submitted.code, submitted.stderr).toBe(3);
  const doc = JSON.parse(submitted.stdout) as JobDocument;
  expect(doc.status).toBe('awaiting_review');

  const rejected = await runCli(['review', doc.id, 'reject', '--note', 'not ours'], direct);
  expect(rejected.code, rejected.stderr).toBe(0);
  expect(rejected.stdout).toContain(`job ${doc.id}: rejected`);
  expect(await ended(doc.id)).toMatchObject({ status: 'rejected', review: { decision: 'reject', note: 'not ours' } });

  const status = await runCli(['status', doc.id], direct);
  expect(status.code).toBe(2);
  expect(status.stdout).toContain('review      rejected: not ours');
});

test('review checks its arguments, and a job that is not waiting is refused', async () => {
  const bad = await runCli(['review', 'some-id', 'maybe'], remote);
  expect(bad).toMatchObject({ code: 1, stdout: '' });
  expect(bad.stderr).toMatch(/approve or reject/);
  const long = await runCli(['review', 'some-id', 'approve', '--note', 'x'.repeat(2001)], remote);
  expect(long.code).toBe(1);
  expect(long.stderr).toMatch(/at most 2000/);

  const missing = await runCli(['review', 'no-such-job', 'approve'], remote);
  expect(missing.code).toBe(1);
  expect(missing.stderr).toMatch(/404/);

  const plain = await runCli(['submit', '--wait', '--json', photo], remote, 120_000);
  expect(plain.code, plain.stderr).toBe(0);
  const { id } = JSON.parse(plain.stdout) as JobDocument;
  const refused = await runCli(['review', id, 'approve'], direct);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toContain(`job ${id} is completed, not awaiting_review`);
});

test('submit of a file that does not exist is one line on stderr, not a stack trace', async () => {
  for (const env of [remote, direct]) {
    const result = await runCli(['submit', '--json', photo, '/nonexistent/photo.jpg'], env);
    expect(result).toMatchObject({ code: 1, stdout: '' });
    expect(result.stderr.trim()).toBe('no such file: /nonexistent/photo.jpg');
  }
});
