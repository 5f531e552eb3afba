/**
 * notifyUrl is a producer's choice of where this service sends requests: only http(s), bounded, and by default never
 * to loopback, private, link-local or metadata addresses, checked on the address actually connected to. The
 * receiver's URL is not shown to readers without the API token.
 */
import http from 'node:http';
import path from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { isForbiddenAddress } from '../src/lib/outbound.js';
import { freePort } from '../src/lib/net.js';
import { bullConnection } from '../src/queue/connection.js';
import { JOB_CREATED, JOBS_QUEUE } from '../src/queue/names.js';
import { createProducer } from '../src/queue/producer.js';
import {
  CORPUS,
  dropPrefix,
  isTerminal,
  ServiceProcess,
  storedJob,
  TestState,
  TEST_REDIS_URL,
  uniquePrefix,
  waitFor,
} from './helpers.js';

const TOKEN = 'api-token-for-the-ssrf-tests-0123456';
const prefix = uniquePrefix('webhook-safety');
let state: TestState;
let base: string;
let service: ServiceProcess;
let receiver: http.Server;
let receiverPort: number;
let hits = 0;

beforeAll(async () => {
  // Stands for an internal admin port on the same machine: it must never be reached.
  receiver = http.createServer((_req, res) => {
    hits += 1;
    res.writeHead(204).end();
  });
  receiverPort = await freePort();
  await new Promise<void>((r) => receiver.listen(receiverPort, '127.0.0.1', r));
  state = await TestState.create('webhook-safety');
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  service = await new ServiceProcess([], {
    ...state.env,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: prefix,
    INPUT_ROOTS: CORPUS,
    PORT: String(port),
    API_TOKEN: TOKEN,
    WEBHOOK_TIMEOUT_MS: '2000',
    RETRY_BACKOFF_MS: '100',
  }).ready();
}, 90_000);

afterAll(async () => {
  await service?.stop();
  receiver.closeAllConnections();
  await new Promise((r) => receiver.close(r));
  await dropPrefix(TEST_REDIS_URL, prefix);
  await state?.drop();
});

test('the addresses a producer may not reach', () => {
  for (const a of [
    '127.0.0.1',
    '127.8.9.10',
    '10.1.2.3',
    '172.16.0.1',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '224.0.0.1',
    '::1',
    '::',
    'fe80::1',
    'fd00::1',
    'ff02::1',
    '::ffff:127.0.0.1',
    '::ffff:10.0.0.1',
  ])
    expect(isForbiddenAddress(a), a).toBe(true);
  for (const a of ['93.184.216.34', '8.8.8.8', '2606:4700:4700::1111', '::ffff:8.8.8.8'])
    expect(isForbiddenAddress(a), a).toBe(false);
});

test(
  'webhooks to loopback and metadata addresses are refused, by literal IP or by name',
  {
    timeout: 300_000,
  },
  async () => {
    const targets = {
      'ssrf-loopback': `http://127.0.0.1:${receiverPort}/admin`,
      'ssrf-name': `http://localhost:${receiverPort}/admin`,
      'ssrf-mapped': `http://[::ffff:127.0.0.1]:${receiverPort}/admin`,
      'ssrf-metadata': 'http://169.254.169.254/latest/meta-data/',
    };
    const producer = createProducer({ redisUrl: TEST_REDIS_URL, prefix });
    for (const [jobId, notifyUrl] of Object.entries(targets))
      await producer.enqueueJob({ jobId, notifyUrl, file: { path: path.join(CORPUS, 'image/320x240.jpg') } });
    await producer.close();
    for (const jobId of Object.keys(targets)) {
      const doc = await waitFor(`webhook of ${jobId} to end`, async () => {
        const d = await storedJob(state, jobId);
        return isTerminal(d) && d.webhook?.status === 'failed' && d;
      });
      // Refused once, for good: a forbidden address does not become allowed by retrying.
      expect(doc.webhook, jobId).toMatchObject({ attempts: 1, lastStatusCode: null });
      expect(doc.webhook?.lastError, jobId).toMatch(/WEBHOOK_ALLOW_PRIVATE/);
    }
    expect(hits).toBe(0);

    // Readers without the token do not learn where a job's webhook goes; the token holder does.
    const open = (await (await fetch(`${base}/jobs/ssrf-loopback`)).json()) as { webhook: { url: string } };
    expect(open.webhook.url).not.toContain('127.0.0.1');
    const authed = (await (
      await fetch(`${base}/jobs/ssrf-loopback`, { headers: { authorization: `Bearer ${TOKEN}` } })
    ).json()) as { webhook: { url: string } };
    expect(authed.webhook.url).toBe(targets['ssrf-loopback']);
    const list = (await (await fetch(`${base}/jobs?limit=200`)).json()) as { jobs: { webhook?: { url: string } }[] };
    expect(JSON.stringify(list)).not.toContain(`127.0.0.1:${receiverPort}`);
  },
);

test('URLs that are not http(s), or too long, are refused at intake', { timeout: 300_000 }, async () => {
  const file = path.join(CORPUS, 'image/320x240.jpg');
  const bad = [
    'file:///etc/passwd',
    'gopher://127.0.0.1:6379/_FLUSHALL',
    'data:text/plain,hello',
    'http://user:password@example.com/hook',
    `https://example.com/${'a'.repeat(900 * 1024)}`,
  ];
  for (const notifyUrl of bad) {
    const res = await fetch(`${base}/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ file: { path: file }, notifyUrl }),
    });
    expect(res.status, notifyUrl.slice(0, 40)).toBe(400);
  }
  const queue = new Queue(JOBS_QUEUE, { connection: bullConnection(TEST_REDIS_URL, 'producer'), prefix });
  try {
    await queue.add(
      JOB_CREATED,
      { jobId: 'ssrf-gopher', file: { path: file }, notifyUrl: bad[1] },
      { jobId: 'ssrf-gopher' },
    );
  } finally {
    await queue.close();
  }
  const doc = await waitFor('ssrf-gopher to end', async () => {
    const d = await storedJob(state, 'ssrf-gopher');
    return isTerminal(d) && d;
  });
  expect(doc.error?.code).toBe('INVALID_INPUT');
  expect(doc.webhook).toBeUndefined();
});
