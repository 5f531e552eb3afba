/**
 * Event streams that end: a reconnect after the terminal event, a stream on a job that never moves (here: an API
 * with no orchestrator, so a job stays queued), and a cap on open streams. An API-only service, its own prefix.
 */
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { freePort } from '../src/lib/net.js';
import { CORPUS, dropPrefix, ServiceProcess, TEST_REDIS_URL, TestState, uniquePrefix } from './helpers.js';

const prefix = uniquePrefix('sse');
let state: TestState;
let base: string;
let service: ServiceProcess;
const MAX_AGE_MS = 2000;

beforeAll(async () => {
  state = await TestState.create('sse');
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  service = await new ServiceProcess(['--role', 'api'], {
    ...state.env,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: prefix,
    INPUT_ROOTS: CORPUS,
    PORT: String(port),
    SSE_MAX_STREAMS: '2',
    SSE_MAX_AGE_MS: String(MAX_AGE_MS),
  }).ready();
}, 60_000);

afterAll(async () => {
  await service?.stop();
  await dropPrefix(TEST_REDIS_URL, prefix);
  await state?.drop();
});

async function createJob(): Promise<string> {
  const res = await fetch(`${base}/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ file: { path: path.join(CORPUS, 'image/320x240.jpg') } }),
  });
  expect(res.status).toBe(202);
  return ((await res.json()) as { id: string }).id;
}

/** Reads a whole stream; its event ids and how long it stayed open. */
async function readStream(url: string, headers: Record<string, string> = {}, limitMs = 20_000) {
  const started = Date.now();
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(limitMs) });
  const text = res.status === 200 ? await res.text() : '';
  const ids = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
  return { status: res.status, text, ids, tookMs: Date.now() - started };
}

test('a reconnect after the terminal event gets 204 at once, not a stream that never ends', async () => {
  const id = await createJob();
  // No orchestrator runs: the job is cancelled while queued, which ends it.
  expect((await fetch(`${base}/jobs/${id}/cancel`, { method: 'POST' })).status).toBe(202);
  const first = await readStream(`${base}/jobs/${id}/events`);
  expect(first.status).toBe(200);
  expect(first.text).toMatch(/event: status\ndata: \{"status":"cancelled"/);
  const last = first.ids.at(-1)!;
  // What a browser's EventSource does when the server closes the finished stream.
  const again = await readStream(`${base}/jobs/${id}/events`, { 'last-event-id': String(last) });
  expect(again.status).toBe(204);
  expect(again.tookMs).toBeLessThan(15_000); // at once: a hang would run into the 20 s fetch limit
  // From the middle: exactly the rest, then the end.
  const middle = await readStream(`${base}/jobs/${id}/events?lastEventId=${first.ids[0]!}`);
  expect(middle.ids).toEqual(first.ids.slice(1));
});

test('a stream on a job that never moves ends at SSE_MAX_AGE_MS; more than SSE_MAX_STREAMS get 503', async () => {
  const id = await createJob(); // stays queued: nothing will ever run it here
  const a = readStream(`${base}/jobs/${id}/events`);
  const b = readStream(`${base}/jobs/${id}/events`);
  await new Promise((r) => setTimeout(r, 500));
  const third = await fetch(`${base}/jobs/${id}/events`);
  expect(third.status).toBe(503);
  expect(third.headers.get('retry-after')).toBeTruthy();
  for (const s of await Promise.all([a, b])) {
    expect(s.status).toBe(200);
    expect(s.text).toContain('"status":"queued"');
    // Closed by the server after its maximum age, not left open forever.
    expect(s.tookMs).toBeGreaterThanOrEqual(MAX_AGE_MS - 100);
    expect(s.tookMs).toBeLessThan(MAX_AGE_MS + 15_000);
  }
  // Their slots are free again.
  const after = readStream(`${base}/jobs/${id}/events`);
  expect((await after).status).toBe(200);
});

test('SIGTERM ends open streams at once: a draining API exits cleanly, not at its backstop', async () => {
  // A second API on the same state with the default maximum age (30 minutes): only the shutdown can end its stream.
  const port = await freePort();
  const other = await new ServiceProcess(['--role', 'api'], {
    ...state.env,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: prefix,
    INPUT_ROOTS: CORPUS,
    PORT: String(port),
    SHUTDOWN_TIMEOUT_MS: '1000',
  }).ready();
  const id = await createJob(); // stays queued: nothing runs it
  const stream = readStream(`http://127.0.0.1:${port}/jobs/${id}/events`, {}, 120_000);
  await new Promise((r) => setTimeout(r, 1000));
  other.kill('SIGTERM');
  const exit = await other.exited;
  // The backstop (SHUTDOWN_TIMEOUT_MS + 15 s) exits with 1; a drained API exits with 0.
  expect(exit.code, other.log.slice(-2000)).toBe(0);
  const s = await stream;
  expect(s.status).toBe(200);
  expect(s.text).toContain('"status":"queued"');
});
