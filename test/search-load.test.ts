/**
 * Searches cannot freeze the service. Hundreds of jobs indexed with transcripts of 60,000 characters, then thirty
 * searches of eight broad prefixes at once through the HTTP API of a running `start` (API and orchestrator in one
 * process), on each backend. While they run, /healthz and GET /jobs/:id keep answering; every search answers its
 * page, or is refused with a code (503 UNAVAILABLE when too many wait, 503 TIMEOUT past SEARCH_TIMEOUT_MS).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { JobDocument } from '../src/lib/types.js';
import { dropPrefix, serviceOn, TEST_REDIS_URL, TestState, uniquePrefix, type ServiceProcess } from './helpers.js';
import { BROAD_QUERY, indexLongJobs } from './support/long-texts.js';

const JOBS = 300;
const CHARS = 60_000;
const SEARCHES = 30;
/** Hang guard, not a speed check: a free event loop answers in milliseconds; a blocked one took tens of seconds. */
const GUARD_MS = 2000;

interface Answer {
  status: number;
  body: {
    jobs?: JobDocument[];
    matches?: { id: string; snippet: { text: string; match: boolean }[] }[];
    nextCursor?: string | null;
    error?: { code: string; message: string };
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(['sqlite', 'postgres'] as const)('search load on %s', (backend) => {
  const prefix = uniquePrefix(`search-${backend.slice(0, 2)}`);
  let state: TestState;
  let service: ServiceProcess;
  let base: string;
  let ids: Set<string>;

  beforeAll(async () => {
    state = await TestState.create(`search-load-${backend}`, backend);
    ids = new Set(await indexLongJobs(await state.store(), JOBS, CHARS));
    ({ service, base } = await serviceOn(state, prefix, { SEARCH_RATE_LIMIT: '1000' }));
  }, 300_000);

  afterAll(async () => {
    await service?.stop();
    await dropPrefix(TEST_REDIS_URL, prefix);
    await state?.drop();
  });

  /** Milliseconds until `path` answered 200; Infinity past the hang guard. */
  async function answerTime(path: string): Promise<number> {
    const started = performance.now();
    try {
      const res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(GUARD_MS) });
      expect(res.status, path).toBe(200);
      await res.arrayBuffer();
      return performance.now() - started;
    } catch (err) {
      if ((err as Error).name === 'TimeoutError') return Infinity;
      throw err;
    }
  }

  async function search(q: string): Promise<Answer> {
    const res = await fetch(`${base}/jobs?q=${encodeURIComponent(q)}`);
    return { status: res.status, body: (await res.json()) as Answer['body'] };
  }

  test('thirty broad searches at once: /healthz and GET /jobs/:id keep answering; each search answers or is refused with a code', async () => {
    let settled = false;
    const searches = Promise.all(Array.from({ length: SEARCHES }, () => search(BROAD_QUERY))).finally(
      () => (settled = true),
    );
    // Let the searches reach the service, then probe it until the last one has answered.
    await sleep(300);
    do {
      for (const path of ['/healthz', '/jobs/long-0']) {
        expect(await answerTime(path), `${path} while ${SEARCHES} searches ran`).toBeLessThan(GUARD_MS);
      }
      await sleep(100);
    } while (!settled);

    const answers = await searches;
    for (const { status, body } of answers) {
      if (status === 200) {
        // Every job has all eight prefixes: a full page, in order with its snippets, each showing a match.
        expect(body.jobs).toHaveLength(50);
        expect(body.jobs!.every((j) => ids.has(j.id))).toBe(true);
        expect(body.matches!.map((m) => m.id)).toEqual(body.jobs!.map((j) => j.id));
        expect(body.matches!.every((m) => m.snippet.some((p) => p.match))).toBe(true);
        expect(body.nextCursor).toEqual(expect.any(String));
      } else {
        expect(status).toBe(503);
        expect(['UNAVAILABLE', 'TIMEOUT']).toContain(body.error?.code);
      }
    }
    expect(answers.filter((a) => a.status === 200).length).toBeGreaterThan(0);
    // And the service is itself again: the next search answers.
    expect((await search(BROAD_QUERY)).status).toBe(200);
  }, 300_000);
});
