/**
 * Completion webhooks against real HTTP receivers on loopback: signed with an HMAC, retried after a 500, given up
 * on with a timeout when the receiver hangs; the delivery status is in the job document.
 */
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, expect, onTestFinished, test } from 'vitest';
import { freePort } from '../src/lib/net.js';
import type { JobDocument } from '../src/lib/types.js';
import { createProducer } from '../src/queue/producer.js';
import { signWebhook } from '../src/queue/webhooks.js';
import {
  CORPUS,
  dropPrefix,
  isTerminal,
  runCli,
  ServiceProcess,
  storedJob,
  TestState,
  TEST_REDIS_URL,
  uniquePrefix,
  waitFor,
} from './helpers.js';

const API_TOKEN = 'api-token-for-the-webhook-tests-0123';
let secret: string;
const prefix = uniquePrefix('webhooks');
let state: TestState;
let dataDir: string;
let service: ServiceProcess;

/** A call a receiver got. */
interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * A receiver of the calling test's own on loopback, closed when the test ends: `answer` replies to its `n`-th call
 * (or never). Returns its URL and the calls it got.
 */
async function receiver(
  answer: (n: number, res: http.ServerResponse) => void,
): Promise<{ url: string; received: Received[] }> {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      answer(received.length, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onTestFinished(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`, received };
}

beforeAll(async () => {
  state = await TestState.create('webhooks');
  dataDir = state.dataDir;
  service = await new ServiceProcess([], {
    ...state.env,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: prefix,
    INPUT_ROOTS: CORPUS,
    PORT: String(await freePort()),
    // No WEBHOOK_SECRET: a key is generated. The receivers here are on loopback, which needs allowing.
    API_TOKEN,
    WEBHOOK_ALLOW_PRIVATE: 'true',
    WEBHOOK_TIMEOUT_MS: '500',
    WEBHOOK_ATTEMPTS: '3',
    RETRY_BACKOFF_MS: '100',
  }).ready();
  const printed = await runCli(['webhook-secret'], { DATA_DIR: dataDir });
  expect(printed.code).toBe(0);
  secret = printed.stdout.trim();
}, 90_000);

afterAll(async () => {
  await service?.stop();
  await dropPrefix(TEST_REDIS_URL, prefix);
  await state?.drop();
});

async function submit(jobId: string, url: string): Promise<void> {
  const producer = createProducer({ redisUrl: TEST_REDIS_URL, prefix });
  await producer.enqueueJob({ jobId, notifyUrl: url, file: { path: path.join(CORPUS, 'image/320x240.jpg') } });
  await producer.close();
}

const delivery = (jobId: string, status: string) =>
  waitFor(`webhook ${status} for ${jobId}`, async () => {
    const doc = await storedJob(state, jobId);
    return isTerminal(doc) && doc.webhook?.status === status && doc;
  });

test('the final document is POSTed, signed', { timeout: 300_000 }, async () => {
  const { url, received } = await receiver((_, res) => res.writeHead(204).end());
  await submit('hook-ok', url);
  const doc = await delivery('hook-ok', 'delivered');
  expect(doc.webhook).toMatchObject({ attempts: 1, lastStatusCode: 204, lastError: null });
  expect(received).toHaveLength(1);
  const call = received[0]!;
  const sent = JSON.parse(call.body) as JobDocument;
  expect(sent).toMatchObject({ id: 'hook-ok', status: 'completed', fileType: 'image' });
  const timestamp = Number(call.headers['x-media-orchestrator-timestamp']);
  // Signed with the generated key that `webhook-secret` prints, never with the API token.
  expect(secret).toMatch(/^[0-9a-f]{64}$/);
  expect(call.headers['x-media-orchestrator-signature']).toBe(signWebhook(secret, timestamp, call.body));
  expect(call.headers['x-media-orchestrator-signature']).not.toBe(signWebhook(API_TOKEN, timestamp, call.body));
  expect(call.headers['x-media-orchestrator-job']).toBe('hook-ok');
});

test('a receiver answering 500 is retried with backoff until it accepts', { timeout: 300_000 }, async () => {
  const { url, received } = await receiver((n, res) => res.writeHead(n <= 2 ? 500 : 200).end('ok'));
  await submit('hook-flaky', url);
  const doc = await delivery('hook-flaky', 'delivered');
  expect(doc.webhook).toMatchObject({ attempts: 3, lastStatusCode: 200 });
  expect(received).toHaveLength(3);
});

test('a receiver that hangs is timed out, retried, and the delivery ends failed', { timeout: 300_000 }, async () => {
  const { url, received } = await receiver(() => undefined);
  await submit('hook-hang', url);
  const doc = await delivery('hook-hang', 'failed');
  expect(doc.webhook).toMatchObject({ attempts: 3, lastStatusCode: null });
  expect(doc.webhook?.lastError).toMatch(/no answer within 500 ms/);
  expect(doc.status).toBe('completed');
  // Each attempt reached it.
  expect(received).toHaveLength(3);
});
