/**
 * Webhook receivers that fail do not hold back the others: real receivers on loopback (one that never answers, one
 * that answers 500, a port nobody listens on, a healthy one), the real webhook queue on Redis, the job store. A host
 * gets a few deliveries at once and the rest wait without holding a worker; a host that keeps failing has its circuit
 * opened, then tried again by one delivery; a delivery held back is still tried, and ends delivered or failed in its
 * job document.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';
import { freePort } from '../src/lib/net.js';
import { createLogger } from '../src/lib/log.js';
import type { JobDocument } from '../src/lib/types.js';
import { ReceiverHosts } from '../src/queue/receiver-hosts.js';
import { startWebhooks, type Webhooks } from '../src/queue/webhooks.js';
import { openJobStore, type JobStore } from '../src/store/index.js';
import { dropPrefix, tempDir, TEST_REDIS_URL, uniquePrefix, waitFor } from './helpers.js';

interface Hit {
  job: string;
  at: number;
  endedAt: number | null;
}

interface Receiver {
  url: string;
  hits: Hit[];
  /** The most requests it had open at once. */
  maxOpen: number;
  /** From now on, what it answers (null: nothing, ever). */
  answer: (n: number) => number | null;
  close(): Promise<void>;
}

const cleanup: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** An HTTP receiver on loopback answering its n-th request (from 1) with `answer(n)`, or never when that is null. */
async function receiver(answer: (n: number) => number | null): Promise<Receiver> {
  let open = 0;
  const r: Receiver = {
    url: '',
    hits: [],
    maxOpen: 0,
    answer,
    close: async () => {
      server.closeAllConnections();
      await new Promise((done) => server.close(done));
    },
  };
  const server = http.createServer((req, res) => {
    const hit: Hit = { job: String(req.headers['x-media-orchestrator-job']), at: Date.now(), endedAt: null };
    r.hits.push(hit);
    open += 1;
    r.maxOpen = Math.max(r.maxOpen, open);
    res.on('close', () => {
      open -= 1;
      hit.endedAt = Date.now();
    });
    req.resume();
    const status = r.answer(r.hits.length);
    if (status !== null) req.on('end', () => res.writeHead(status).end());
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  cleanup.push(() => r.close());
  return r;
}

/** The webhook worker on a queue prefix and job store of its own. */
async function webhooks(env: Record<string, string>): Promise<{ hooks: Webhooks; store: JobStore }> {
  const prefix = uniquePrefix('webhook-isolation');
  const dataDir = tempDir('webhook-isolation');
  const config = loadConfig({
    DATA_DIR: dataDir,
    QUEUE_PREFIX: prefix,
    WEBHOOK_SECRET: 'webhook-isolation-secret-0123',
    WEBHOOK_ALLOW_PRIVATE: 'true',
    RETRY_BACKOFF_MS: '100',
    LOG_LEVEL: 'silent',
    ...env,
  });
  const store = await openJobStore(config);
  const hooks = await startWebhooks(config, TEST_REDIS_URL, store, createLogger('silent'));
  cleanup.push(async () => {
    await hooks.close();
    await store.close();
    await dropPrefix(TEST_REDIS_URL, prefix);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  return { hooks, store };
}

/** Makes a job for each id and schedules its webhook to `url`. */
async function deliver(hooks: Webhooks, store: JobStore, ids: string[], url: string): Promise<void> {
  for (const id of ids) {
    await store.createOrGet({ jobId: id, file: { path: `/media/${id}.jpg` } });
    await hooks.enqueue(id, url);
  }
}

const ids = (name: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${name}-${i}`);

/** The job documents of `jobIds` once every one's webhook has ended (delivered or failed). */
function ended(store: JobStore, jobIds: string[], timeoutMs = 120_000): Promise<JobDocument[]> {
  return waitFor(
    `the webhooks of ${jobIds.join(', ')} to end`,
    async () => {
      const docs = await Promise.all(jobIds.map((id) => store.get(id)));
      return docs.every((d) => d?.webhook?.status === 'delivered' || d?.webhook?.status === 'failed') && docs;
    },
    timeoutMs,
  ) as Promise<JobDocument[]>;
}

test('the circuit of one host, step by step: closed, open, half-open with one trial, open again, closed', () => {
  let now = 1_000_000;
  const hosts = new ReceiverHosts({ concurrency: 2, failures: 2, cooldownMs: 1000, timeoutMs: 5000 }, () => now);
  const go = (origin = 'http://a') => {
    const entry = hosts.enter(origin);
    if (!entry.go) throw new Error(`held back (${entry.why})`);
    return entry;
  };
  const [one, two] = [go(), go()];
  expect(hosts.enter('http://a')).toMatchObject({ go: false, why: 'busy' });
  // Another host is not held back by this one.
  go('http://b').done('answered');
  one.done('failed', 'no answer');
  two.done('failed', 'no answer');
  const open = hosts.enter('http://a');
  expect(open).toMatchObject({ go: false, why: 'open', failures: 2, lastError: 'no answer' });
  expect(!open.go && open.until).toBeGreaterThanOrEqual(now + 1000);
  now += 1000;
  // Half-open: one trial, the others wait for it; it fails and the circuit opens again.
  const trial = go();
  expect(hosts.enter('http://a')).toMatchObject({ go: false, why: 'busy' });
  trial.done('failed', 'the receiver answered 503');
  expect(hosts.enter('http://a')).toMatchObject({ go: false, why: 'open', lastError: 'the receiver answered 503' });
  now += 1000;
  // A trial that tells nothing (a forbidden address) leaves it half-open; an answered one closes it.
  go().done('neutral');
  go().done('answered');
  const [three, four] = [go(), go()];
  three.done('answered');
  four.done('answered');
});

test('a host that never answers does not hold back the deliveries to another host', async () => {
  const hanging = await receiver(() => null);
  const healthy = await receiver(() => 204);
  const { hooks, store } = await webhooks({
    WEBHOOK_TIMEOUT_MS: '5000',
    WEBHOOK_ATTEMPTS: '3',
    WEBHOOK_HOST_CONCURRENCY: '2',
    WEBHOOK_BREAKER_FAILURES: '5',
    WEBHOOK_BREAKER_COOLDOWN_MS: '1000',
  });
  // More deliveries to the hanging host than the worker takes at once, queued first.
  const stuck = ids('stuck', 12);
  const fine = ids('fine', 4);
  await deliver(hooks, store, stuck, hanging.url);
  await deliver(hooks, store, fine, healthy.url);

  const delivered = await waitFor('the healthy host to get every delivery', async () => {
    const docs = await Promise.all(fine.map((id) => store.get(id)));
    return docs.every((d) => d?.webhook?.status === 'delivered') && docs;
  });
  expect(delivered.map((d) => d!.webhook!.attempts)).toEqual([1, 1, 1, 1]);
  // They went through before any request to the hanging host had even timed out: none waited behind it.
  const waiting = await Promise.all(stuck.map((id) => store.get(id)));
  expect(waiting.map((d) => d!.webhook?.attempts)).toEqual(stuck.map(() => 0));
  expect(hanging.maxOpen).toBeLessThanOrEqual(2);

  // The host comes back: every delivery held back reaches it.
  hanging.answer = () => 204;
  const docs = await ended(store, stuck);
  for (const doc of docs) expect(doc.webhook, doc.id).toMatchObject({ status: 'delivered', lastStatusCode: 204 });
  expect(new Set(hanging.hits.filter((h) => h.endedAt !== null).map((h) => h.job))).toEqual(new Set(stuck));
  expect(hanging.maxOpen).toBeLessThanOrEqual(2);
});

test("a failing host's circuit opens, half-opens for one trial after the cooldown, and closes when it answers", async () => {
  const COOLDOWN = 1500;
  // 500 to the first five requests, then 204.
  const broken = await receiver((n) => (n <= 5 ? 500 : 204));
  const { hooks, store } = await webhooks({
    WEBHOOK_TIMEOUT_MS: '5000',
    WEBHOOK_ATTEMPTS: '6',
    WEBHOOK_HOST_CONCURRENCY: '1',
    WEBHOOK_BREAKER_FAILURES: '3',
    WEBHOOK_BREAKER_COOLDOWN_MS: String(COOLDOWN),
  });
  const jobs = ids('broken', 4);
  await deliver(hooks, store, jobs, broken.url);
  // While the circuit is open, a waiting delivery's document says so.
  const held = await waitFor('a delivery held back by the open circuit', async () => {
    const docs = await Promise.all(jobs.map((id) => store.get(id)));
    return docs.find((d) => d?.webhook?.lastError?.startsWith('held back'))?.webhook;
  });
  expect(held.status).toBe('pending');
  expect(held.lastError).toMatch(/failed 3 times in a row \(the receiver answered 500\); next try after/);
  const docs = await ended(store, jobs);
  for (const doc of docs) expect(doc.webhook, doc.id).toMatchObject({ status: 'delivered', lastStatusCode: 204 });
  // Held back, a delivery spends none of its attempts: every attempt recorded is a request the host received.
  expect(docs.reduce((n, d) => n + d.webhook!.attempts, 0)).toBe(broken.hits.length);

  const hits = broken.hits;
  // Three failures in a row open the circuit: nothing is sent during the cooldown. Then one trial (the 4th request)
  // fails and opens it again, as does the 5th; the 6th is answered and the rest follow.
  const gap = (i: number): number => hits[i]!.at - hits[i - 1]!.endedAt!;
  for (const i of [3, 4, 5]) expect(gap(i), `before request ${i + 1}`).toBeGreaterThanOrEqual(COOLDOWN * 0.9);
  expect(hits.length).toBe(5 + jobs.length);
});

test('a host that stays down: every delivery is still tried and ends failed, none is lost', async () => {
  const port = await freePort();
  const { hooks, store } = await webhooks({
    WEBHOOK_TIMEOUT_MS: '2000',
    WEBHOOK_ATTEMPTS: '2',
    WEBHOOK_HOST_CONCURRENCY: '2',
    WEBHOOK_BREAKER_FAILURES: '2',
    WEBHOOK_BREAKER_COOLDOWN_MS: '300',
  });
  const jobs = ids('down', 5);
  await deliver(hooks, store, jobs, `http://127.0.0.1:${port}/hook`);
  const docs = await ended(store, jobs);
  for (const doc of docs) {
    expect(doc.webhook, doc.id).toMatchObject({ status: 'failed', attempts: 2, lastStatusCode: null });
    expect(doc.webhook?.lastError, doc.id).toMatch(/ECONNREFUSED/);
  }
});
