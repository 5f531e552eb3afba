/**
 * The upload rate limit counts only requests that passed authentication, per token; without a token configured, per
 * client address, where X-Forwarded-For is believed only from a proxy named in TRUST_PROXY. API-only services.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { freePort } from '../src/lib/net.js';
import { CORPUS, dropPrefix, ServiceProcess, tempDir, TEST_REDIS_URL, uniquePrefix } from './helpers.js';

const TOKEN = 'api-token-for-the-rate-limit-tests-01';
const LIMIT = 3;
const cleanup: (() => Promise<void>)[] = [];

afterAll(async () => {
  for (const c of cleanup) await c();
});

async function apiService(name: string, extra: Record<string, string>): Promise<string> {
  const prefix = uniquePrefix(name);
  const dataDir = tempDir(name);
  const port = await freePort();
  const service = await new ServiceProcess(['--role', 'api'], {
    DATA_DIR: dataDir,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: prefix,
    INPUT_ROOTS: CORPUS,
    PORT: String(port),
    UPLOAD_RATE_LIMIT: String(LIMIT),
    ...extra,
  }).ready();
  cleanup.push(async () => {
    await service.stop();
    await dropPrefix(TEST_REDIS_URL, prefix);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  return `http://127.0.0.1:${port}`;
}

const post = (base: string, headers: Record<string, string>) =>
  fetch(`${base}/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ file: { path: path.join(CORPUS, 'image/320x240.jpg') } }),
  });

test('unauthenticated requests do not spend the allowance of the token holder', { timeout: 300_000 }, async () => {
  const base = await apiService('rate-token', { API_TOKEN: TOKEN });
  // The attack: a flood of requests without the token, from the same address, before the real client comes.
  for (let i = 0; i < 20; i++) expect((await post(base, {})).status).toBe(401);
  const auth = { authorization: `Bearer ${TOKEN}` };
  for (let i = 0; i < LIMIT; i++) expect((await post(base, auth)).status, `upload ${i + 1}`).toBe(202);
  // The token's own allowance still holds.
  expect((await post(base, auth)).status).toBe(429);
});

test('without TRUST_PROXY a client cannot dodge the limit with X-Forwarded-For', { timeout: 300_000 }, async () => {
  const base = await apiService('rate-ip', {});
  const codes: number[] = [];
  for (let i = 0; i < LIMIT + 2; i++) codes.push((await post(base, { 'x-forwarded-for': `203.0.113.${i}` })).status);
  expect(codes.slice(0, LIMIT)).toEqual(Array(LIMIT).fill(202));
  expect(codes.slice(LIMIT)).toEqual([429, 429]);
});

test('behind a trusted proxy each forwarded client has its own allowance', { timeout: 300_000 }, async () => {
  const base = await apiService('rate-proxy', { TRUST_PROXY: '127.0.0.1' });
  for (let i = 0; i < LIMIT; i++) expect((await post(base, { 'x-forwarded-for': '203.0.113.7' })).status).toBe(202);
  expect((await post(base, { 'x-forwarded-for': '203.0.113.7' })).status).toBe(429);
  expect((await post(base, { 'x-forwarded-for': '203.0.113.8' })).status).toBe(202);
});
