/**
 * What a search may cost, through the routes in process (`app.inject` on the real store), on each backend: a search
 * past SEARCH_TIMEOUT_MS is answered 503 TIMEOUT, searches past SEARCH_CONCURRENCY and its line 503 UNAVAILABLE, and
 * on SQLite a prefix that stands for too many words of the index 400 INVALID_INPUT; never a 500.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/lib/log.js';
import { MAX_PREFIX_TERMS } from '../src/lib/search.js';
import { closeApiParts, openApiParts } from '../src/server/api.js';
import { buildApp, type App } from '../src/server/app.js';
import type { ApiParts } from '../src/server/http.js';
import { dropPrefix, TEST_REDIS_URL, TestState, uniquePrefix } from './helpers.js';
import { BROAD_QUERY, indexLongJobs } from './support/long-texts.js';

const JOBS = 50;

interface ErrorBody {
  error: { code: string; message: string };
}
interface Found {
  jobs: { id: string }[];
}

describe.each(['sqlite', 'postgres'] as const)('search limits on %s', (backend) => {
  let state: TestState;
  const opened: { app: App; parts: ApiParts; prefix: string }[] = [];

  beforeAll(async () => {
    state = await TestState.create(`search-limits-${backend}`, backend);
    const store = await state.store();
    await indexLongJobs(store, JOBS, 60_000);
    // One job whose words share a prefix with a thousand others: zqx0 … zqx1000.
    await store.createOrGet({ jobId: 'many-words', file: { path: '/media/many-words.txt' } });
    const many = Array.from({ length: MAX_PREFIX_TERMS + 1 }, (_, i) => `zqx${i}`).join(' ');
    await store.index('many-words', { name: 'many words txt', body: many });
  }, 120_000);

  afterAll(async () => {
    for (const { app, parts, prefix } of opened.splice(0)) {
      await app.close();
      await closeApiParts(parts);
      await dropPrefix(TEST_REDIS_URL, prefix);
    }
    await state?.drop();
  });

  /** An app on the shared jobs with these search settings. */
  async function appWith(env: Record<string, string>): Promise<App> {
    const prefix = uniquePrefix(`search-limits-${backend.slice(0, 2)}`);
    const config = loadConfig({ ...state.env, QUEUE_PREFIX: prefix, SEARCH_RATE_LIMIT: '1000', ...env });
    const parts = await openApiParts(config, createLogger('silent'), TEST_REDIS_URL);
    const app = await buildApp(parts);
    opened.push({ app, parts, prefix });
    return app;
  }

  const search = (app: App, q: string) => app.inject({ url: `/jobs?q=${encodeURIComponent(q)}` });

  test('a search past SEARCH_TIMEOUT_MS is answered 503 TIMEOUT; the plain listing still answers', async () => {
    const app = await appWith({ SEARCH_TIMEOUT_MS: '1' });
    for (let i = 0; i < 2; i++) {
      const res = await search(app, BROAD_QUERY);
      expect(res.statusCode).toBe(503);
      expect(res.json<ErrorBody>().error.code).toBe('TIMEOUT');
      expect(res.json<ErrorBody>().error.message).toContain('SEARCH_TIMEOUT_MS');
    }
    expect((await app.inject({ url: '/jobs?limit=1' })).statusCode).toBe(200);
  });

  test('one search runs and four wait with SEARCH_CONCURRENCY=1: the rest are refused 503 UNAVAILABLE at once', async () => {
    const app = await appWith({ SEARCH_CONCURRENCY: '1' });
    const answers = await Promise.all(Array.from({ length: 7 }, () => search(app, BROAD_QUERY)));
    const refused = answers.filter((a) => a.statusCode === 503);
    expect(refused).toHaveLength(2);
    for (const res of refused) {
      expect(res.json<ErrorBody>().error.code).toBe('UNAVAILABLE');
      expect(res.headers['retry-after']).toBe('5');
    }
    for (const res of answers.filter((a) => a.statusCode !== 503)) {
      expect(res.statusCode).toBe(200);
      expect(res.json<Found>().jobs).toHaveLength(JOBS);
    }
  });

  test(`a prefix for more than ${MAX_PREFIX_TERMS} words: 400 INVALID_INPUT on SQLite, answered on PostgreSQL`, async () => {
    const app = await appWith({});
    const broad = await search(app, 'zqx*');
    if (backend === 'sqlite') {
      expect(broad.statusCode).toBe(400);
      expect(broad.json<ErrorBody>().error.code).toBe('INVALID_INPUT');
      expect(broad.json<ErrorBody>().error.message).toContain('"zqx*"');
    } else {
      expect(broad.statusCode).toBe(200);
      expect(broad.json<Found>().jobs.map((j) => j.id)).toEqual(['many-words']);
    }
    // zqx1, zqx10 … zqx19, zqx100 … zqx199, zqx1000: found on both.
    const narrower = await search(app, 'zqx1*');
    expect(narrower.statusCode).toBe(200);
    expect(narrower.json<Found>().jobs.map((j) => j.id)).toEqual(['many-words']);
  });
});
