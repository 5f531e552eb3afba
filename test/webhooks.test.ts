/**
 * Completion webhooks against real HTTP receivers on loopback: signed with an HMAC, retried after a 500, given up
 * on with a timeout when the receiver hangs; the delivery status is in the job document.
 */
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
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
let receiver: http.Server;
let receiverUrl: string;
const received: { path: string; headers: http.IncomingHttpHeaders; body: string }[] = [];
let flakyCalls = 0;

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      received.push({ path: req.url ?? '', headers: req.headers, body });
      if (req.url === '/ok') res.writeHead(204).end();
      else if (req.url === '/flaky') res.writeHead(++flakyCalls <= 2 ? 500 : 200).end('ok');
      // '/hang': never answers.
    });
  });
  const port = await freePort();
  await new Promise<void>((r) => receiver.listen(port, '127.0.0.1', r));
  receiverUrl = `http://127.0.0.1:${port}`;
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
  receiver.closeAllConnections();
  await new Promise((r) => receiver.close(r));
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
  await submit('hook-ok', `${receiverUrl}/ok`);
  const doc = await delivery('hook-ok', 'delivered');
  expect(doc.webhook).toMatchObject({ attempts: 1, lastStatusCode: 204, lastError: null });
  const call = received.find((r) => r.path === '/ok')!;
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
  await submit('hook-flaky', `${receiverUrl}/flaky`);
  const doc = await delivery('hook-flaky', 'delivered');
  expect(doc.webhook).toMatchObject({ attempts: 3, lastStatusCode: 200 });
  expect(received.filter((r) => r.path === '/flaky')).toHaveLength(3);
});

test('a receiver that hangs is timed out, retried, and the delivery ends failed', { timeout: 300_000 }, async () => {
  await submit('hook-hang', `${receiverUrl}/hang`);
  const doc = await delivery('hook-hang', 'failed');
  expect(doc.webhook).toMatchObject({ attempts: 3, lastStatusCode: null });
  expect(doc.webhook?.lastError).toMatch(/no answer within 500 ms/);
  expect(doc.status).toBe('completed');
});
