/**
 * The job store's contract, one spec for every backend (the way LangGraph's checkpoint validation runs one spec
 * against every saver). Each backend gives a fresh, empty store per test and a second connection to the same data,
 * for what two processes do at once.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Annotation, END, START, StateGraph } from '@langchain/langgraph';
import { PostgresSaver } from '@langchain/langgraph-checkpoint-postgres';
import pg from 'pg';
import { afterEach, describe, expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';
import { DESCRIPTOR_LENGTH } from '../src/lib/people.js';
import { MAX_SEARCH_DEPTH } from '../src/lib/search.js';
import type { JobInput } from '../src/lib/types.js';
import { InvalidCursor, openJobStore, openStores, type JobStore } from '../src/store/index.js';
import { SCHEMA_VERSION as PG_SCHEMA_VERSION } from '../src/store/postgres/migrations.js';
import { PostgresJobStore } from '../src/store/postgres/postgres-job-store.js';
import { SCHEMA_VERSION, SEARCH_TOKENIZER } from '../src/store/sqlite/migrations.js';
import { analysisWith, tempDir, waitFor } from './helpers.js';

interface Backend {
  name: string;
  /** A fresh empty store, and a function that opens another connection to the same data. */
  open: () => Promise<{ store: JobStore; another: () => Promise<JobStore>; cleanup: () => Promise<void> }>;
}

const sqlite: Backend = {
  name: 'sqlite',
  async open() {
    const dir = tempDir('store');
    const config = loadConfig({ DATA_DIR: dir });
    return {
      store: await openJobStore(config),
      another: () => openJobStore(config),
      cleanup: () => Promise.resolve(fs.rmSync(dir, { recursive: true, force: true })),
    };
  },
};

/** Each test gets a schema of its own in the test database, dropped afterwards. */
const PG_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
let schemas = 0;
const postgres: Backend = {
  name: 'postgres',
  async open() {
    const schema = `mo_store_test_${process.pid}_${++schemas}`;
    // Opened the way every process opens it: from config.
    const config = loadConfig({ DATA_DIR: tempDir('store-pg'), DATABASE_URL: PG_URL, DATABASE_SCHEMA: schema });
    return {
      store: await openJobStore(config),
      another: () => openJobStore(config),
      cleanup: async () => {
        const client = new pg.Client({ connectionString: PG_URL });
        await client.connect();
        try {
          await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        } finally {
          await client.end();
        }
      },
    };
  },
};

const input = (jobId: string, extra: Partial<JobInput> = {}): JobInput => ({
  jobId,
  file: { path: `/media/${jobId}.jpg` },
  ...extra,
});

/** A job that never ran, as saveFinished takes it. */
function notStartedJob(jobId: string): Parameters<JobStore['saveFinished']>[0] {
  return {
    jobId,
    status: 'failed',
    fileType: null,
    file: { path: `/media/${jobId}.jpg` },
    fileInfo: null,
    user: null,
    steps: {},
    results: {},
    error: null,
  };
}

const HERON = { provider: 'local', text: 'a heron on a post', source: 'text' };

/** A finished photo job, `old-photo` at /media/IMG_7.jpg, as a store before search would have kept it. */
async function oldPhoto(store: JobStore, results: Parameters<JobStore['saveFinished']>[0]['results']): Promise<void> {
  const job = input('old-photo', { file: { path: '/media/IMG_7.jpg' } });
  await store.createOrGet(job);
  await store.saveFinished({
    jobId: job.jobId,
    status: 'completed',
    fileType: 'image',
    file: job.file,
    fileInfo: null,
    user: null,
    steps: {},
    results,
    error: null,
  });
}

/** oldPhoto with a face, in a person named Hal. */
async function oldPhotoOfHal(store: JobStore): Promise<void> {
  await oldPhoto(store, { summary: HERON });
  const descriptor = new Float32Array(DESCRIPTOR_LENGTH).fill(1 / Math.sqrt(DESCRIPTOR_LENGTH));
  const box = { x: 0, y: 0, width: 9, height: 9 };
  await store.people.recordFaces('old-photo', [{ index: 0, box, score: 1, descriptor, crop: 'face-0.jpg' }]);
  const [person] = await store.people.listPeople(null, 1);
  await store.people.renamePerson(person!.id, 'Hal');
}

const sha = (c: string): string => c.repeat(64);

/** `hash` with the bits at `positions` (0: the most significant) flipped. */
function flip(hash: string, positions: number[]): string {
  let n = BigInt(`0x${hash}`);
  for (const p of positions) n ^= 1n << BigInt(63 - p);
  return n.toString(16).padStart(16, '0');
}

/** A photo job finished with these bytes (`sha`, repeated to 64 digits) and perceptual hash. */
async function finishedImage(
  store: JobStore,
  jobId: string,
  o: { sha: string; hash: string; user?: string; status?: 'completed' | 'failed' },
): Promise<void> {
  const job = input(jobId, { file: { path: `/media/photo-${jobId}.jpg` }, ...(o.user && { user: { id: o.user } }) });
  await store.createOrGet(job);
  await store.saveFinished({
    jobId,
    status: o.status ?? 'completed',
    fileType: 'image',
    file: job.file,
    fileInfo: { name: `photo-${jobId}.jpg`, size: 10, mime: 'image/jpeg', ext: 'jpg', sha256: sha(o.sha) },
    user: job.user ?? null,
    steps: {},
    results: { perceptualHash: { kind: 'dhash', value: o.hash } },
    error: o.status === 'failed' ? { code: 'CORRUPT_FILE', message: 'x', step: 'generateThumbnails' } : null,
  });
}

describe.each([sqlite, postgres])('job store contract: $name', (backend) => {
  const opened: { stores: JobStore[]; cleanup: () => Promise<void> }[] = [];
  const fresh = async (): Promise<{ store: JobStore; another: () => Promise<JobStore> }> => {
    const { store, another, cleanup } = await backend.open();
    const entry = { stores: [store], cleanup };
    opened.push(entry);
    return {
      store,
      another: async () => {
        const s = await another();
        entry.stores.push(s);
        return s;
      },
    };
  };
  afterEach(async () => {
    for (const { stores, cleanup } of opened.splice(0)) {
      for (const s of stores) await s.close();
      await cleanup();
    }
  });

  test('creates a job once: a repeated id is the same job, with one queued event', async () => {
    const { store } = await fresh();
    const first = await store.createOrGet(input('a', { priority: 5 }));
    expect(first).toMatchObject({ id: 'a', status: 'queued', priority: 5 });
    const again = await store.createOrGet(input('a', { priority: 1 }));
    expect(again).toEqual(first);
    expect(await store.getInput('a')).toEqual(input('a', { priority: 5 }));
    expect((await store.events('a')).map((e) => [e.type, e.data])).toEqual([['status', { status: 'queued' }]]);
    expect(await store.get('nope')).toBeNull();
  });

  test('a request fingerprint is stored with the job that creates it; a second create keeps the first', async () => {
    const { store } = await fresh();
    // Two servers creating one job under one Idempotency-Key at once, from different requests.
    await Promise.all([store.createOrGet(input('idem', {}), 'h1'), store.createOrGet(input('idem', {}), 'h2')]);
    const first = await store.getRequestHash('idem');
    expect(['h1', 'h2']).toContain(first);
    await store.createOrGet(input('idem', {}), 'h3');
    expect(await store.getRequestHash('idem')).toBe(first);
    await store.createOrGet(input('plain', {}));
    expect(await store.getRequestHash('plain')).toBeNull();
  });

  test('a watcher hears of the events another connection commits, by job, until it stops', async () => {
    const { store, another } = await fresh();
    const writer = await another();
    const heard: string[] = [];
    const stop = await store.watchEvents((jobId) => jobId && heard.push(jobId));
    await writer.createOrGet(input('w1'));
    await writer.markRunning('w1');
    await writer.createOrGet(input('w2'));
    await waitFor('both jobs to be heard of', () => heard.includes('w1') && heard.includes('w2'), 10_000);
    expect(new Set(heard)).toEqual(new Set(['w1', 'w2']));
    await stop();
    const before = heard.length;
    await writer.markRunning('w2');
    await new Promise((r) => setTimeout(r, 600));
    expect(heard).toHaveLength(before);
  });

  test('transitions write the document and one event per change, in order, with growing ids', async () => {
    const { store } = await fresh();
    await store.createOrGet(input('t'));
    await store.markRunning('t');
    await store.stepChanged('t', 'validate', { status: 'running', attempts: 1 });
    await store.stepChanged('t', 'validate', { status: 'succeeded', attempts: 1, durationMs: 1500 });
    // A late `running` never moves a settled step backwards.
    await store.stepChanged('t', 'validate', { status: 'running', attempts: 1 });
    await store.saveFinished({
      jobId: 't',
      status: 'completed',
      fileType: 'image',
      file: { path: '/media/t.jpg' },
      fileInfo: { name: 't.jpg', size: 3, mime: 'image/jpeg', ext: 'jpg', sha256: 'ab' },
      user: null,
      steps: { validate: { status: 'succeeded', attempts: 1, durationMs: 1500 } },
      results: {},
      error: null,
    });
    const doc = (await store.get('t'))!;
    expect(doc).toMatchObject({ status: 'completed', fileType: 'image', file: { name: 't.jpg', sha256: 'ab' } });
    expect(doc.steps.validate?.status).toBe('succeeded');
    expect(doc.finishedAt).not.toBeNull();
    const events = await store.events('t');
    expect(
      events.map((e) => (e.type === 'status' ? e.data.status : `${String(e.data.step)}:${String(e.data.status)}`)),
    ).toEqual(['queued', 'running', 'validate:running', 'validate:succeeded', 'completed']);
    const ids = events.map((e) => e.id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    // Resuming a stream after an event gives only what came later.
    expect((await store.events('t', ids[2])).map((e) => e.id)).toEqual(ids.slice(3));
    expect(await store.stepDurations()).toEqual([{ step: 'validate', status: 'succeeded', seconds: 1.5 }]);
    expect(await store.countByStatus()).toEqual({ completed: 1 });
  });

  test('a job finished before it was stored is created and finished in one go', async () => {
    const { store } = await fresh();
    const doc = await store.endBeforeStart(input('r'), 'failed', {
      code: 'INVALID_INPUT',
      message: 'no file',
      step: null,
    });
    expect(doc).toMatchObject({ status: 'failed', error: { code: 'INVALID_INPUT' } });
    expect(await store.countFailuresByCode()).toEqual({ INVALID_INPUT: 1 });
  });

  test('reopen puts a finished job back to queued and keeps the retry beside it', async () => {
    const { store } = await fresh();
    await store.endBeforeStart(input('re'), 'failed', { code: 'TIMEOUT', message: 'slow', step: null });
    const retry = { generation: 1, previous: { steps: {}, results: {}, fileInfo: null, fileType: null } };
    const doc = await store.reopen('re', retry);
    expect(doc).toMatchObject({ status: 'queued', error: null, finishedAt: null });
    expect(await store.getRetry('re')).toEqual(retry);
    expect(await store.getRetry('nope')).toBeNull();
    expect(await store.getRequestHash('re')).toBeNull();
    await store.setWebhook('re', {
      url: 'https://example.com/hook',
      status: 'pending',
      attempts: 0,
      lastStatusCode: null,
      lastError: null,
      deliveredAt: null,
    });
    expect((await store.get('re'))?.webhook?.status).toBe('pending');
  });

  test('lists newest first with filters and cursors, and refuses a cursor it never gave out', async () => {
    const { store } = await fresh();
    for (let i = 0; i < 5; i++) {
      await store.createOrGet(input(`l${i}`, { user: { id: i % 2 ? 'odd' : 'even' } }));
      await new Promise((r) => setTimeout(r, 2));
    }
    const first = await store.list({}, 2);
    expect(first.jobs.map((j) => j.id)).toEqual(['l4', 'l3']);
    const second = await store.list({}, 2, first.nextCursor!);
    expect(second.jobs.map((j) => j.id)).toEqual(['l2', 'l1']);
    const last = await store.list({}, 2, second.nextCursor!);
    expect(last).toEqual({ jobs: [expect.objectContaining({ id: 'l0' })], nextCursor: null });
    expect((await store.list({ user: 'odd' }, 10)).jobs.map((j) => j.id)).toEqual(['l3', 'l1']);
    expect((await store.list({ status: 'failed' }, 10)).jobs).toEqual([]);
    await expect(store.list({}, 2, 'garbage')).rejects.toBeInstanceOf(InvalidCursor);
  });

  test('search finds jobs by file name and by their words, ranked, with the matching snippet', async () => {
    const { store } = await fresh();
    const finish = async (
      jobId: string,
      name: string,
      results: Parameters<JobStore['saveFinished']>[0]['results'],
      extra: Partial<JobInput> = {},
    ): Promise<void> => {
      const job = input(jobId, { file: { path: `/media/${name}` }, ...extra });
      await store.createOrGet(job);
      await store.saveFinished({
        jobId,
        status: 'completed',
        fileType: 'image',
        file: job.file,
        fileInfo: null,
        user: job.user ?? null,
        steps: {},
        results,
        error: null,
      });
    };
    const analysis = (...labels: string[]) => analysisWith(labels);
    await finish('park', 'IMG_2041.jpeg', { analysis: analysis('person', 'dog', 'bench') });
    await finish('dogs-name', 'dog_show.jpeg', { analysis: analysis('person') }, { user: { id: 'ann' } });
    await finish('beach', 'beach.jpeg', { analysis: analysis('person', 'surfboard') });
    await finish('talk', 'talk.mkv', {
      transcript: {
        provider: 'subtitles',
        source: 'subtitle track 1',
        text: 'Subtitles can serve as a transcript when no speech model is configured.',
        truncated: false,
        chars: 70,
        url: '/jobs/talk/artifacts/transcript.txt',
      },
    });

    // Stemmed ("dogs" finds "dog"), every word required, a match in the name ranked above one in the text.
    const dogs = await store.search('dogs', {}, 10);
    expect(dogs.jobs.map((j) => j.id)).toEqual(['dogs-name', 'park']);
    expect(dogs.matches.map((m) => m.id)).toEqual(['dogs-name', 'park']);
    expect(dogs.matches[1]!.snippet.filter((p) => p.match).map((p) => p.text.toLowerCase())).toEqual(['dog']);
    expect((await store.search('dog bench', {}, 10)).jobs.map((j) => j.id)).toEqual(['park']);
    expect((await store.search('img 2041', {}, 10)).jobs.map((j) => j.id)).toEqual(['park']);
    expect((await store.search('configur*', {}, 10)).jobs.map((j) => j.id)).toEqual(['talk']);
    expect((await store.search('configured', {}, 10)).matches[0]!.snippet.map((p) => p.text).join('')).toContain(
      'no speech model is configured',
    );
    // Filters narrow it, pages follow the ranking, and a word nobody has finds nothing.
    expect((await store.search('dog', { user: 'ann' }, 10)).jobs.map((j) => j.id)).toEqual(['dogs-name']);
    const first = await store.search('person', {}, 2);
    expect(first.jobs).toHaveLength(2);
    const rest = await store.search('person', {}, 2, first.nextCursor!);
    expect(new Set([...first.jobs, ...rest.jobs].map((j) => j.id))).toEqual(new Set(['park', 'dogs-name', 'beach']));
    expect(rest.nextCursor).toBeNull();
    expect(await store.search('zebra', {}, 10)).toEqual({ jobs: [], matches: [], nextCursor: null });
    await expect(store.search('dog', {}, 2, 'garbage')).rejects.toBeInstanceOf(InvalidCursor);

    // The engines' own syntax is only punctuation here: none of it is an error or an operator.
    for (const q of [
      '"',
      "'",
      'dog OR zebra',
      'NEAR(dog bench)',
      'dog:*',
      '-dog',
      'dog & !cat',
      '*',
      '(',
      'name:dog',
    ]) {
      const page = await store.search(q, {}, 10);
      expect(
        page.jobs.every((j) => ['park', 'dogs-name'].includes(j.id)),
        q,
      ).toBe(true);
    }
    expect((await store.search('dog OR zebra', {}, 10)).jobs).toEqual([]);

    // Both backends: no stop words, compound tokens found by their parts, combining marks inside words, and a word
    // in the file name ranked above the same word said three times in a transcript.
    await finish('notes', 'release_notes.txt', {
      summary: {
        provider: 'local',
        text: 'The release 2.5.1 of the hindi भाषा guide; write to ops@example.org',
        source: 'text',
      },
    });
    await finish('talk-dogs', 'walk.mkv', {
      summary: { provider: 'local', text: 'A dog, then a dog, and a dog again.', source: 'transcript' },
    });
    expect((await store.search('the release', {}, 10)).jobs.map((j) => j.id)).toEqual(['notes']);
    expect((await store.search('2 5 1', {}, 10)).jobs.map((j) => j.id)).toEqual(['notes']);
    expect((await store.search('example org', {}, 10)).jobs.map((j) => j.id)).toEqual(['notes']);
    expect((await store.search('भाषा', {}, 10)).jobs.map((j) => j.id)).toEqual(['notes']);
    expect((await store.search('भ', {}, 10)).jobs).toEqual([]);
    expect((await store.search('dog', {}, 10)).jobs.map((j) => j.id)[0]).toBe('dogs-name');
    // A short prefix is an exact word, not a scan of the index.
    expect((await store.search('rel*', {}, 10)).jobs.map((j) => j.id)).toEqual(['notes']);
    expect((await store.search('re*', {}, 10)).jobs).toEqual([]);

    // A job is found by its name from its creation, before it has words.
    await store.createOrGet(input('queued-one', { file: { path: '/media/holiday-in-rome.mov' } }));
    expect((await store.search('rome', {}, 10)).jobs.map((j) => j.id)).toEqual(['queued-one']);

    // Fuller text replaces what saveFinished indexed; a deleted job is not found any more.
    await store.index('talk', { name: 'talk mkv', body: 'the whole transcript mentions an aardvark' });
    expect((await store.search('aardvark', {}, 10)).jobs.map((j) => j.id)).toEqual(['talk']);
    expect((await store.search('configured', {}, 10)).jobs).toEqual([]);
    await store.delete('park');
    expect((await store.search('bench', {}, 10)).jobs).toEqual([]);
    // Indexing a job deleted meanwhile (a late full-text index) writes nothing back.
    await store.index('park', { name: 'park', body: 'bench' });
    expect((await store.search('bench', {}, 10)).jobs).toEqual([]);
    await store.createOrGet(input('park'));
    expect((await store.search('bench', {}, 10)).jobs).toEqual([]);
  });

  test('a search ranks the newest MAX_SEARCH_DEPTH jobs that match: an older one is not found, however it matches', async () => {
    const { store } = await fresh();
    // The oldest has the word in its name (it would rank first of all); the newer ones have it in their text only.
    await store.createOrGet(input('heron-name', { file: { path: '/media/heron.jpg' } }));
    await new Promise((r) => setTimeout(r, 5));
    for (let i = 0; i < MAX_SEARCH_DEPTH; i++) {
      const id = `bird-${String(i).padStart(4, '0')}`;
      await store.createOrGet(input(id));
      await store.index(id, { name: id, body: 'a grey heron by the water' });
    }
    const seen = new Set<string>();
    let cursor: string | undefined;
    do {
      const page = await store.search('heron', {}, 50, cursor);
      for (const job of page.jobs) seen.add(job.id);
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(seen.size).toBe(MAX_SEARCH_DEPTH);
    expect(seen.has('heron-name')).toBe(false);
    // One newer match fewer: it is among the candidates, and ranked first.
    await store.delete('bird-0500');
    expect((await store.search('heron', {}, 50)).jobs[0]!.id).toBe('heron-name');
  });

  test('delete removes the job with its events and step runs, and says whether there was one', async () => {
    const { store } = await fresh();
    await store.createOrGet(input('d'));
    const run = await store.stepStarted('d', 'validate', 1);
    await store.stepEnded(run, 'failed', 'CORRUPT_FILE');
    expect(await store.runs('d')).toEqual([
      expect.objectContaining({ id: run, step: 'validate', attempt: 1, status: 'failed', errorCode: 'CORRUPT_FILE' }),
    ]);
    expect(await store.delete('d')).toBe(true);
    expect(await store.get('d')).toBeNull();
    expect(await store.events('d')).toEqual([]);
    expect(await store.runs('d')).toEqual([]);
    expect(await store.delete('d')).toBe(false);
  });

  test('model usage adds up by provider, model and capability', async () => {
    const { store } = await fresh();
    const use = {
      jobId: 'u',
      step: 'summarize' as const,
      capability: 'text' as const,
      provider: 'openai',
      model: 'm',
      usage: { inputTokens: 10, outputTokens: 5, totalTokens: 15, calls: 1, latencyMs: 200 },
    };
    await store.aiUsed(use);
    await store.aiUsed({
      ...use,
      usage: { inputTokens: 1, outputTokens: -3, totalTokens: 1, calls: 1, latencyMs: Number.NaN },
    });
    expect(await store.aiUsageTotals()).toEqual([
      {
        provider: 'openai',
        model: 'm',
        capability: 'text',
        inputTokens: 11,
        outputTokens: 5,
        calls: 2,
        latencyMs: 200,
      },
    ]);
  });

  test('unsettled: jobs not ended and unchanged since a time, least recently changed first, page by page', async () => {
    const { store } = await fresh();
    const tick = () => new Promise((r) => setTimeout(r, 5));
    for (const id of ['q1', 'r1', 'w1', 'done', 'q2']) {
      await store.createOrGet(input(id));
      await tick();
    }
    await store.markRunning('r1');
    await tick();
    await store.awaitReview('w1', { reason: 'asked', evidence: {} }, { fileType: null, fileInfo: null, results: {} });
    await tick();
    await store.saveFinished({ ...notStartedJob('done'), status: 'completed' });
    await tick();
    const cut = new Date().toISOString();
    await tick();
    await store.createOrGet(input('late'));

    const all = await store.unsettled(cut, 10);
    expect(all.map((d) => [d.id, d.status])).toEqual([
      ['q1', 'queued'],
      ['q2', 'queued'],
      ['r1', 'running'],
      ['w1', 'awaiting_review'],
    ]);
    const first = await store.unsettled(cut, 2);
    expect(first.map((d) => d.id)).toEqual(['q1', 'q2']);
    const next = await store.unsettled(cut, 2, { updatedAt: first[1]!.updatedAt, id: first[1]!.id });
    expect(next.map((d) => d.id)).toEqual(['r1', 'w1']);
    expect(await store.unsettled(cut, 2, { updatedAt: next[1]!.updatedAt, id: next[1]!.id })).toEqual([]);
  });

  test('two connections changing one job at once lose no update and no event', async () => {
    const { store, another } = await fresh();
    const other = await another();
    await store.createOrGet(input('c'));
    const steps = ['validate', 'extractMetadata', 'generateThumbnails', 'analyzeImage'] as const;
    await Promise.all(
      steps.map((step, i) =>
        (i % 2 ? other : store).stepChanged('c', step, { status: 'succeeded', attempts: 1, durationMs: i }),
      ),
    );
    const doc = (await other.get('c'))!;
    expect(Object.keys(doc.steps).sort()).toEqual([...steps].sort());
    expect((await store.events('c')).filter((e) => e.type === 'step')).toHaveLength(steps.length);
    await expect(store.ping()).resolves.toBeUndefined();
  });

  test('duplicates: exact by sha256 and near by dHash within an owner, listed by the later job, asked both ways', async () => {
    const { store } = await fresh();
    const base = '0f0f0f0f0f0f0f0f';
    await finishedImage(store, 'first', { sha: 'a', hash: base });
    await finishedImage(store, 'copy', { sha: 'a', hash: base });
    // Ten bits away, spread 3+3+2+2 over the four parts: found through a part two bits away.
    await finishedImage(store, 'near', { sha: 'b', hash: flip(base, [0, 1, 2, 16, 17, 18, 32, 33, 48, 49]) });
    // Ten bits away, all in one part: found through the three parts that agree.
    await finishedImage(store, 'near2', { sha: 'c', hash: flip(base, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]) });
    // Eleven bits away (and further from the others): not a duplicate.
    await finishedImage(store, 'far', { sha: 'd', hash: flip(base, [20, 21, 22, 23, 36, 37, 38, 39, 52, 53, 54]) });
    // The same bytes for another owner, and a failed job with them: neither is.
    await finishedImage(store, 'theirs', { sha: 'a', hash: base, user: 'u-2' });
    await finishedImage(store, 'broken', { sha: 'a', hash: base, status: 'failed' });

    expect((await store.get('first'))!.results.duplicates).toBeUndefined();
    expect((await store.get('copy'))!.results.duplicates).toEqual([{ jobId: 'first', kind: 'exact', distance: 0 }]);
    expect((await store.get('near'))!.results.duplicates).toEqual([
      { jobId: 'first', kind: 'near', distance: 10 },
      { jobId: 'copy', kind: 'near', distance: 10 },
    ]);
    expect((await store.get('near2'))!.results.duplicates?.map((d) => d.jobId)).toEqual(['first', 'copy']);
    expect((await store.get('far'))!.results.duplicates).toBeUndefined();
    expect((await store.get('theirs'))!.results.duplicates).toBeUndefined();
    expect((await store.get('broken'))!.results.duplicates).toBeUndefined();

    expect(await store.duplicates('first')).toEqual([
      { jobId: 'copy', kind: 'exact', distance: 0, relation: 'later' },
      { jobId: 'near', kind: 'near', distance: 10, relation: 'later' },
      { jobId: 'near2', kind: 'near', distance: 10, relation: 'later' },
    ]);
    expect((await store.duplicates('copy')).map((d) => [d.jobId, d.relation])).toEqual([
      ['first', 'earlier'],
      ['near', 'later'],
      ['near2', 'later'],
    ]);
    expect(await store.duplicates('broken')).toEqual([]);
    expect(await store.duplicates('nope')).toEqual([]);

    // The filter: jobs whose documents list duplicates, in a listing and in a search.
    expect((await store.list({ duplicates: true }, 10)).jobs.map((j) => j.id).sort()).toEqual([
      'copy',
      'near',
      'near2',
    ]);
    expect((await store.list({ duplicates: false }, 10)).jobs.map((j) => j.id).sort()).toEqual([
      'broken',
      'far',
      'first',
      'theirs',
    ]);
    expect((await store.search('photo', { duplicates: true }, 10)).jobs.map((j) => j.id).sort()).toEqual([
      'copy',
      'near',
      'near2',
    ]);

    expect((await store.exactDuplicateOf(null, sha('a'), 'other'))?.id).toBe('first');
    expect((await store.exactDuplicateOf(null, sha('a'), 'first'))?.id).toBe('copy');
    expect((await store.exactDuplicateOf({ id: 'u-2' }, sha('a'), 'x'))?.id).toBe('theirs');
    expect(await store.exactDuplicateOf({ id: 'u-3' }, sha('a'), 'x')).toBeNull();

    // Deleting a job deletes its registration: nothing finds it any more.
    expect(await store.delete('first')).toBe(true);
    expect((await store.duplicates('copy')).map((d) => d.jobId)).toEqual(['near', 'near2']);
    expect((await store.exactDuplicateOf(null, sha('a'), 'other'))?.id).toBe('copy');
    // A job finished again (a retry) is looked up again, and keeps its place.
    await finishedImage(store, 'far', { sha: 'd', hash: base });
    expect((await store.get('far'))!.results.duplicates?.map((d) => d.jobId)).toEqual(['copy', 'near', 'near2']);
    expect((await store.duplicates('near2')).find((d) => d.jobId === 'far')?.relation).toBe('later');
  });

  describe('people', () => {
    /** A unit descriptor near axis `k` (faces of one person share k; `tilt` tells their pictures apart). */
    const near = (k: number, tilt = 0): Float32Array => {
      const d = new Float32Array(DESCRIPTOR_LENGTH);
      d[k] = 1;
      d[(k + 500) % DESCRIPTOR_LENGTH] = tilt;
      const n = Math.hypot(1, tilt);
      return d.map((v) => v / n);
    };
    const face = (index: number, descriptor: Float32Array | null) => ({
      index,
      box: { x: 10 * index, y: 5, width: 40, height: 50 },
      score: 0.9,
      descriptor,
      crop: `face-${index}.jpg`,
    });
    const job = async (store: JobStore, id: string, user?: string) =>
      store.createOrGet(input(id, user ? { user: { id: user } } : {}));

    test("a job's faces are written once and placed: near faces join a person, far ones start one", async () => {
      const { store } = await fresh();
      await job(store, 'j1');
      await job(store, 'j2');
      // Two people in one picture, and a face the model could not describe.
      expect(await store.people.recordFaces('j1', [face(0, near(1)), face(1, near(2)), face(2, null)])).toBe(true);
      // Again (a step run again after its process died): nothing more.
      expect(await store.people.recordFaces('j1', [face(0, near(1)), face(1, near(2))])).toBe(false);
      // The first person again, and someone new; a job that does not exist records nothing.
      expect(await store.people.recordFaces('j2', [face(0, near(1, 0.3)), face(1, near(3))])).toBe(true);
      expect(await store.people.recordFaces('gone', [face(0, near(1))])).toBe(false);

      const people = await store.people.listPeople(null, 10);
      expect(people.map((p) => [p.faceCount, p.jobIds])).toEqual([
        [2, ['j1', 'j2']],
        [1, ['j1']],
        [1, ['j2']],
      ]);
      const first = (await store.people.getPerson(people[0]!.id))!;
      expect(first).toMatchObject({ owner: null, name: null, cover: { jobId: 'j1', crop: 'face-0.jpg' } });
      expect(first.faces.map((f) => [f.jobId, f.index, f.box.x])).toEqual([
        ['j1', 0, 0],
        ['j2', 0, 0],
      ]);
      expect(await store.people.getPerson(99_999)).toBeNull();
    });

    test('two faces of one picture are never one person, however alike', async () => {
      const { store } = await fresh();
      await job(store, 'j1');
      await job(store, 'j2');
      await store.people.recordFaces('j1', [face(0, near(1))]);
      await store.people.recordFaces('j2', [face(0, near(1, 0.1)), face(1, near(1, 0.2))]);
      expect((await store.people.listPeople(null, 10)).map((p) => p.faceCount)).toEqual([2, 1]);
    });

    test("each owner's people are their own", async () => {
      const { store } = await fresh();
      await job(store, 'a', 'ann');
      await job(store, 'b', 'bob');
      await job(store, 'c');
      for (const id of ['a', 'b', 'c']) await store.people.recordFaces(id, [face(0, near(1))]);
      for (const [owner, jobId] of [
        ['ann', 'a'],
        ['bob', 'b'],
        [null, 'c'],
      ] as const)
        expect((await store.people.listPeople(owner, 10)).map((p) => p.jobIds)).toEqual([[jobId]]);
    });

    test('naming and merging; merging across owners is refused', async () => {
      const { store } = await fresh();
      for (const id of ['j1', 'j2']) await job(store, id, 'ann');
      await job(store, 'j3', 'bob');
      await store.people.recordFaces('j1', [face(0, near(1))]);
      await store.people.recordFaces('j2', [face(0, near(2))]);
      await store.people.recordFaces('j3', [face(0, near(3))]);
      const [p1, p2] = (await store.people.listPeople('ann', 10)).map((p) => p.id).sort((a, b) => a - b);
      const [p3] = (await store.people.listPeople('bob', 10)).map((p) => p.id);
      expect(await store.people.renamePerson(p1!, 'Ada')).toBe(true);
      expect(await store.people.renamePerson(99_999, 'Nobody')).toBe(false);
      expect(await store.people.mergePeople(p1!, p3!)).toBe('other-owner');
      expect(await store.people.mergePeople(p1!, 99_999)).toBe('missing');
      expect(await store.people.mergePeople(p1!, p1!)).toBe('missing');
      expect(await store.people.mergePeople(p1!, p2!)).toBe('merged');
      expect(await store.people.getPerson(p2!)).toBeNull();
      expect(await store.people.getPerson(p1!)).toMatchObject({ name: 'Ada', owner: 'ann', faceCount: 2 });
      // A new face near either merged face joins the merged person.
      await job(store, 'j4', 'ann');
      await store.people.recordFaces('j4', [face(0, near(2, 0.2))]);
      expect((await store.people.getPerson(p1!))!.jobIds).toEqual(['j1', 'j2', 'j4']);
    });

    test('deleting a job deletes its faces, and a person left with none', async () => {
      const { store } = await fresh();
      for (const id of ['j1', 'j2']) await job(store, id);
      await store.people.recordFaces('j1', [face(0, near(1)), face(1, near(2))]);
      await store.people.recordFaces('j2', [face(0, near(1, 0.2))]);
      expect(await store.delete('j1')).toBe(true);
      const people = await store.people.listPeople(null, 10);
      expect(people.map((p) => [p.faceCount, p.jobIds])).toEqual([[1, ['j2']]]);
      expect(await store.delete('j2')).toBe(true);
      expect(await store.people.listPeople(null, 10)).toEqual([]);
    });

    test('detaching a face places it again without its person: it joins another person or starts one', async () => {
      const { store } = await fresh();
      for (const id of ['j1', 'j2', 'j3', 'j4', 'j5']) await job(store, id, 'ann');
      await store.people.recordFaces('j1', [face(0, near(1)), face(1, near(2))]);
      await store.people.recordFaces('j2', [face(0, near(1, 0.2))]);
      await store.people.recordFaces('j3', [{ ...face(0, near(1, 0.4)), score: 0.99 }]);
      const personOf = async (jobId: string) =>
        (await store.people.listPeople('ann', 10)).find((p) => p.jobIds.includes(jobId))!.id;
      const [p1, p2] = [await personOf('j2'), (await store.people.listPeople('ann', 10))[1]!.id];
      expect(await store.people.getPerson(p1)).toMatchObject({ faceCount: 3, cover: { jobId: 'j3' } });
      const placed = (r: Awaited<ReturnType<JobStore['people']['detachFace']>>) => (r as { personId: number }).personId;

      // The cover's face out: no other person is near, so it is a person of its own; the cover is the next best.
      const own = await store.people.detachFace(p1, 'j3', 0);
      expect(own).toEqual({ personId: expect.any(Number) as number, left: 'kept' });
      expect([p1, p2]).not.toContain(placed(own));
      expect(await store.people.getPerson(placed(own))).toMatchObject({ owner: 'ann', name: null, faceCount: 1 });
      expect(await store.people.getPerson(p1)).toMatchObject({
        faceCount: 2,
        cover: { jobId: 'j1', crop: 'face-0.jpg' },
        jobIds: ['j1', 'j2'],
      });
      // Not a face of that person (any more), or no such face: nothing moves.
      expect(await store.people.detachFace(p1, 'j3', 0)).toBe('missing');
      expect(await store.people.detachFace(p1, 'j1', 7)).toBe('missing');
      expect(await store.people.detachFace(99_999, 'j1', 0)).toBe('missing');

      // Out of its own person (then empty, so removed), j3's face joins the nearest other person: p1 again.
      expect(await store.people.detachFace(placed(own), 'j3', 0)).toEqual({ personId: p1, left: 'removed' });
      expect(await store.people.getPerson(placed(own))).toBeNull();
      expect((await store.people.getPerson(p1))!.faceCount).toBe(3);

      // Two alike faces of one picture are two people; the second, detached, cannot join the first: a new person.
      await store.people.recordFaces('j5', [face(0, near(3)), face(1, near(3, 0.3))]);
      const [first, second] = (await store.people.listPeople('ann', 10))
        .filter((p) => p.jobIds.includes('j5'))
        .map((p) => p.id)
        .sort((a, b) => a - b);
      const moved = await store.people.detachFace(second!, 'j5', 1);
      expect(moved).toMatchObject({ left: 'removed' });
      expect([first, second]).not.toContain(placed(moved));
      expect((await store.people.getPerson(first!))!.faceCount).toBe(1);
      // Deleting the job then removes the people it leaves empty, the detached face's among them.
      expect(await store.delete('j5')).toBe(true);
      expect(await store.people.getPerson(placed(moved))).toBeNull();
      expect(await store.people.getPerson(first!)).toBeNull();
    });

    test('deleting a person keeps its faces with their jobs, without descriptor or person: it is not formed again', async () => {
      const { store } = await fresh();
      for (const id of ['j1', 'j2', 'j3']) await job(store, id);
      await store.people.recordFaces('j1', [face(0, near(1)), face(1, near(2))]);
      await store.people.recordFaces('j2', [face(0, near(1, 0.2))]);
      const [p1, p2] = (await store.people.listPeople(null, 10)).map((p) => p.id);
      expect(await store.people.deletePerson(p1!)).toBe(true);
      expect(await store.people.getPerson(p1!)).toBeNull();
      expect(await store.people.deletePerson(p1!)).toBe(false);
      expect((await store.people.listPeople(null, 10)).map((p) => p.id)).toEqual([p2]);
      // A new face near the deleted person's faces finds none of them: a person of one face.
      await store.people.recordFaces('j3', [face(0, near(1, 0.1))]);
      const people = await store.people.listPeople(null, 10);
      expect(people.map((p) => [p.faceCount, p.jobIds])).toEqual([
        [1, ['j1']],
        [1, ['j3']],
      ]);
      // The jobs keep their faces, boxes and crops, without descriptor or person.
      expect((await store.people.jobFaces('j1')).map((f) => [f.index, f.personId, f.described, f.crop])).toEqual([
        [0, null, false, 'face-0.jpg'],
        [1, p2, true, 'face-1.jpg'],
      ]);
      expect(await store.people.jobFaces('j2')).toEqual([
        { ...face(0, null), jobId: 'j2', personId: null, described: false, descriptor: undefined },
      ]);
      expect(await store.people.jobFaces('gone')).toEqual([]);
    });

    test("a search for a person's name finds the jobs of the person, as named, merged, detached and deleted", async () => {
      const { store } = await fresh();
      const finish = async (id: string, user: string) => {
        await job(store, id, user);
        // The faces are recorded while the job runs, before it finishes and is indexed.
        await store.people.recordFaces(id, [face(0, near(id === 'x' ? 2 : 1, id === 'b' ? 0.2 : 0))]);
        await store.saveFinished({
          ...notStartedJob(id),
          status: 'completed',
          fileType: 'image',
          user: { id: user },
          results: { analysis: analysisWith([], { caption: 'a portrait at the beach' }) },
        });
      };
      await finish('a', 'ann');
      await finish('b', 'ann');
      await finish('x', 'ann');
      await finish('bobs', 'bob');
      const found = async (q: string, user?: string) =>
        (await store.search(q, user ? { user } : {}, 10)).jobs.map((j) => j.id).sort();
      const [ada] = (await store.people.listPeople('ann', 10)).map((p) => p.id);
      const [bobs] = (await store.people.listPeople('bob', 10)).map((p) => p.id);
      expect(await found('Grace')).toEqual([]);
      await store.people.renamePerson(ada!, 'Grace Hopper');
      expect(await found('grace')).toEqual(['a', 'b']);
      expect(await found('hopper beach')).toEqual(['a', 'b']);
      expect((await store.search('hopper', {}, 10)).matches[0]!.snippet).toContainEqual({
        text: 'Hopper',
        match: true,
      });
      // Another owner's person of the same name finds that owner's jobs, and `user` keeps them apart.
      await store.people.renamePerson(bobs!, 'Grace');
      expect(await found('grace')).toEqual(['a', 'b', 'bobs']);
      expect(await found('grace', 'ann')).toEqual(['a', 'b']);
      expect(await found('grace', 'bob')).toEqual(['bobs']);
      // A new name replaces the old; finishing again (a retry) keeps it.
      await store.people.renamePerson(ada!, 'Ada');
      expect(await found('hopper')).toEqual([]);
      expect(await found('ada')).toEqual(['a', 'b']);
      await finish('a', 'ann');
      expect(await found('ada')).toEqual(['a', 'b']);
      // Merged into Ada, x is found as Ada; detached, it is not; and a deleted person finds nothing.
      const x = (await store.people.listPeople('ann', 10)).find((p) => p.jobIds.includes('x'))!.id;
      expect(await store.people.mergePeople(ada!, x)).toBe('merged');
      expect(await found('ada')).toEqual(['a', 'b', 'x']);
      expect(await store.people.detachFace(ada!, 'x', 0)).toMatchObject({ left: 'kept' });
      expect(await found('ada')).toEqual(['a', 'b']);
      expect(await store.people.deletePerson(ada!)).toBe(true);
      expect(await found('ada')).toEqual([]);
      expect(await found('beach', 'ann')).toEqual(['a', 'b', 'x']);
    });

    test('connections placing the same face at once make one person', async () => {
      const { store, another } = await fresh();
      const stores = [store, await another(), await another(), await another()];
      const ids = Array.from({ length: 24 }, (_, i) => `j${i}`);
      for (const id of ids) await job(store, id);
      await Promise.all(
        ids.map((id, i) => stores[i % stores.length]!.people.recordFaces(id, [face(0, near(7, i / 60))])),
      );
      expect((await store.people.listPeople(null, 10)).map((p) => p.faceCount)).toEqual([ids.length]);
    });
  });
});

describe('sqlite schema versions', () => {
  test('a new database is at the current version; one newer than the code stops start-up', async () => {
    const dir = tempDir('store-version');
    try {
      const config = loadConfig({ DATA_DIR: dir });
      const store = await openJobStore(config);
      void store.close();
      const db = new Database(path.join(dir, 'orchestrator.db'));
      expect(db.prepare('SELECT version FROM schema_version').get()).toEqual({ version: SCHEMA_VERSION });
      db.prepare('UPDATE schema_version SET version = ?').run(SCHEMA_VERSION + 1);
      db.close();
      await expect(openJobStore(config)).rejects.toThrow(
        /schema is version .* newer than this media-orchestrator knows/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  /** A store filled by `fill`, taken back to an older schema by the SQL `back`, then opened again for `check`. */
  async function afterUpgrade(
    fill: (store: JobStore) => Promise<void>,
    back: string,
    check: (store: JobStore) => Promise<void>,
  ): Promise<void> {
    const dir = tempDir('store-upgrade');
    try {
      const config = loadConfig({ DATA_DIR: dir });
      const store = await openJobStore(config);
      await fill(store);
      await store.close();
      const db = new Database(path.join(dir, 'orchestrator.db'));
      db.exec(back);
      db.close();
      const upgraded = await openJobStore(config);
      await check(upgraded);
      await upgraded.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  test('a database with jobs from before search is indexed by the migration (names and words)', async () => {
    await afterUpgrade(
      async (store) => {
        await oldPhoto(store, { summary: HERON });
        await store.createOrGet(input('old-queued', { file: { path: '/media/lecture.mp4' } }));
      },
      // Back to version 1: no search tables.
      'DROP TABLE job_search; DROP TABLE job_search_rows; UPDATE schema_version SET version = 1',
      async (store) => {
        expect((await store.search('heron', {}, 10)).jobs.map((j) => j.id)).toEqual(['old-photo']);
        expect((await store.search('lecture', {}, 10)).jobs.map((j) => j.id)).toEqual(['old-queued']);
      },
    );
  });

  test("a database from before people in search gets its named people's names indexed by the migration", async () => {
    await afterUpgrade(
      oldPhotoOfHal,
      // Back to version 4: the index without its people column.
      `CREATE VIRTUAL TABLE job_search_v4 USING fts5(name, body, tokenize = "${SEARCH_TOKENIZER}");
       INSERT INTO job_search_v4 (rowid, name, body) SELECT rowid, name, body FROM job_search;
       DROP TABLE job_search; ALTER TABLE job_search_v4 RENAME TO job_search; UPDATE schema_version SET version = 4`,
      async (store) => {
        expect((await store.search('hal heron', {}, 10)).jobs.map((j) => j.id)).toEqual(['old-photo']);
      },
    );
  });

  test('a database made before versioning (no retry column, no schema_version) is brought up to date', async () => {
    const dir = tempDir('store-old');
    try {
      const db = new Database(path.join(dir, 'orchestrator.db'));
      db.exec(`CREATE TABLE jobs (id TEXT PRIMARY KEY, status TEXT NOT NULL, file_type TEXT, user_id TEXT,
        priority INTEGER NOT NULL DEFAULT 0, input TEXT NOT NULL, doc TEXT NOT NULL, created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL, finished_at TEXT)`);
      db.close();
      const store = await openJobStore(loadConfig({ DATA_DIR: dir }));
      await store.createOrGet(input('old'));
      await store.reopen('old', {
        generation: 1,
        previous: { steps: {}, results: {}, fileInfo: null, fileType: null },
      });
      expect((await store.getRetry('old'))?.generation).toBe(1);
      await store.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('postgres schema versions', () => {
  test('migrations run once for processes starting at once; a schema newer than the code stops start-up', async () => {
    const schema = `mo_store_version_${process.pid}`;
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    const dir = tempDir('store-pg-version');
    try {
      // Three processes starting at once: the job store's migrations and LangGraph's checkpoint tables (whose setup
      // has no lock of its own) are each created once.
      const config = loadConfig({ DATA_DIR: dir, DATABASE_URL: PG_URL, DATABASE_SCHEMA: schema });
      const opened = await Promise.all([1, 2, 3].map(() => openStores(config)));
      await Promise.all(opened.map((s) => s.close()));
      const { rows } = await admin.query(`SELECT version FROM ${schema}.schema_version`);
      expect(rows).toEqual([{ version: PG_SCHEMA_VERSION }]);
      const { rows: saver } = await admin.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${schema}.checkpoint_migrations`,
      );
      expect(saver[0]!.n).toBeGreaterThan(0);
      await admin.query(`UPDATE ${schema}.schema_version SET version = $1`, [PG_SCHEMA_VERSION + 1]);
      await expect(PostgresJobStore.open(PG_URL, { schema })).rejects.toThrow(/newer than this media-orchestrator/);
      await expect(PostgresJobStore.open(PG_URL, { schema: 'x; DROP TABLE jobs' })).rejects.toThrow(/schema name/);
    } finally {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await admin.end();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  /** A schema filled by `fill`, taken back to an older version by the SQL `back` (`$schema`: its name), then checked. */
  async function afterUpgrade(
    fill: (store: JobStore) => Promise<void>,
    back: string,
    check: (store: JobStore) => Promise<void>,
  ): Promise<void> {
    const schema = `mo_store_upgrade_${process.pid}`;
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    try {
      const store = await PostgresJobStore.open(PG_URL, { schema });
      await fill(store);
      await store.close();
      await admin.query(back.replaceAll('$schema', schema));
      const upgraded = await PostgresJobStore.open(PG_URL, { schema });
      await check(upgraded);
      await upgraded.close();
    } finally {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await admin.end();
    }
  }

  test('a schema with jobs from before search is indexed by the migration (names, labels, summaries)', async () => {
    await afterUpgrade(
      (store) => oldPhoto(store, { summary: HERON, analysis: analysisWith(['bird']) }),
      'DROP TABLE $schema.job_search; UPDATE $schema.schema_version SET version = 1',
      async (store) => {
        for (const q of ['heron', 'bird', 'img 7'])
          expect(
            (await store.search(q, {}, 10)).jobs.map((j) => j.id),
            q,
          ).toEqual(['old-photo']);
      },
    );
  });

  test("a schema from before people in search gets its named people's names indexed by the migration", async () => {
    await afterUpgrade(
      oldPhotoOfHal,
      // Back to version 4: no people column (its tsvector goes with it).
      'ALTER TABLE $schema.job_search DROP COLUMN people CASCADE; UPDATE $schema.schema_version SET version = 4',
      async (store) => {
        expect((await store.search('hal heron', {}, 10)).jobs.map((j) => j.id)).toEqual(['old-photo']);
      },
    );
  });

  test('a role that may only use the tables runs once they exist (no schema or table rights needed)', async () => {
    const schema = `mo_store_app_${process.pid}`;
    const role = `mo_app_${process.pid}`;
    const dir = tempDir('store-pg-role');
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    try {
      // An administrator creates everything once...
      const owner = loadConfig({ DATA_DIR: dir, DATABASE_URL: PG_URL, DATABASE_SCHEMA: schema });
      await (await openStores(owner)).close();
      // ...and the service runs as a role that can read and write rows, nothing more.
      await admin.query(`CREATE ROLE ${role} LOGIN`);
      await admin.query(`GRANT USAGE ON SCHEMA ${schema} TO ${role}`);
      await admin.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${schema} TO ${role}`);
      await admin.query(`GRANT USAGE ON ALL SEQUENCES IN SCHEMA ${schema} TO ${role}`);
      const url = new URL(PG_URL);
      url.username = role;
      const app = loadConfig({ DATA_DIR: dir, DATABASE_URL: url.toString(), DATABASE_SCHEMA: schema });
      const stores = await openStores(app);
      try {
        await stores.store.createOrGet(input('least-privilege'));
        expect((await stores.store.get('least-privilege'))?.status).toBe('queued');
        await (await openJobStore(app)).close();
      } finally {
        await stores.close();
      }
      // The role really is limited: creating a schema is refused.
      const limited = new pg.Client({ connectionString: url.toString() });
      await limited.connect();
      await expect(limited.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`)).rejects.toThrow(/permission denied/);
      await limited.end();
    } finally {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await admin.query(`DROP ROLE IF EXISTS ${role}`);
      await admin.end();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('DATABASE_SCHEMA holds even when DATABASE_URL sets options of its own', async () => {
    const schema = `mo_store_opts_${process.pid}`;
    const dir = tempDir('store-pg-opts');
    const url = `${PG_URL}${PG_URL.includes('?') ? '&' : '?'}options=${encodeURIComponent('-c statement_timeout=5000')}`;
    const stores = await openStores(loadConfig({ DATA_DIR: dir, DATABASE_URL: url, DATABASE_SCHEMA: schema }));
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    try {
      await stores.store.createOrGet(input('in-schema'));
      const { rows } = await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${schema}.jobs`);
      expect(rows[0]!.n).toBe(1);
    } finally {
      await stores.close();
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await admin.end();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('with DATABASE_URL, checkpoints live in PostgreSQL: a graph resumes from them and a finished thread is deleted', async () => {
    const schema = `mo_store_ckpt_${process.pid}`;
    const dir = tempDir('store-pg-ckpt');
    const config = loadConfig({ DATA_DIR: dir, DATABASE_URL: PG_URL, DATABASE_SCHEMA: schema });
    const stores = await openStores(config);
    try {
      expect(stores.checkpointer).toBeInstanceOf(PostgresSaver);
      const State = Annotation.Root({ n: Annotation<number>() });
      const graph = new StateGraph(State)
        .addNode('add', (s) => ({ n: s.n + 1 }))
        .addEdge(START, 'add')
        .addEdge('add', END)
        .compile({ checkpointer: stores.checkpointer });
      const thread = { configurable: { thread_id: 'ckpt-1' } };
      expect(await graph.invoke({ n: 41 }, thread)).toEqual({ n: 42 });
      // A second connection (another process) reads the same thread's state.
      const other = await openStores(config);
      try {
        const tuple = await other.checkpointer.getTuple(thread);
        expect(tuple?.checkpoint.channel_values).toMatchObject({ n: 42 });
        await other.checkpointer.deleteThread('ckpt-1');
      } finally {
        await other.close();
      }
      expect(await stores.checkpointer.getTuple(thread)).toBeUndefined();
    } finally {
      await stores.close();
      const admin = new pg.Client({ connectionString: PG_URL });
      await admin.connect();
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).finally(() => admin.end());
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('postgres connection loss', () => {
  test('connections killed in the middle of changes and checkpoints cost retries: all of it lands, nothing crashes', async () => {
    const schema = `mo_store_kill_${process.pid}`;
    // A name of their own, so that only this store's connections are killed (other files share the server).
    const app = `mo_kill_${process.pid}`;
    const url = `${PG_URL}${PG_URL.includes('?') ? '&' : '?'}application_name=${app}`;
    const dir = tempDir('store-pg-kill');
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    const stores = await openStores(loadConfig({ DATA_DIR: dir, DATABASE_URL: url, DATABASE_SCHEMA: schema }));
    const { store, checkpointer } = stores;
    try {
      const steps = ['validate', 'extractMetadata', 'generateThumbnails', 'analyzeImage'] as const;
      let done = false;
      const work = Promise.all(
        Array.from({ length: 30 }, async (_, i) => {
          const id = `k${i}`;
          await store.createOrGet(input(id));
          for (const [n, step] of steps.entries()) {
            await store.stepChanged(id, step, { status: 'succeeded', attempts: 1, durationMs: n });
            const config = { configurable: { thread_id: id, checkpoint_ns: '' } };
            await checkpointer.put(config, checkpointOf(`${id}-${n}`), { source: 'loop', step: n, parents: {} }, {});
          }
        }),
      ).finally(() => (done = true));
      // Handled from the start: the loop below would otherwise leave a failure unhandled until `await work`.
      work.catch(() => undefined);
      // As a failover or a restart storm would: every connection killed, thirty times half a second apart (killing
      // them without pause until the work is done makes it a race with the machine's speed, which a loaded machine
      // loses at the 15 s a piece of work keeps trying).
      let killed = 0;
      for (let round = 0; round < 30 && !done; round++) {
        const { rowCount } = await admin.query(
          'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1',
          [app],
        );
        killed += rowCount ?? 0;
        await new Promise((r) => setTimeout(r, 500));
      }
      await work;
      expect(killed).toBeGreaterThan(0);
      for (let i = 0; i < 30; i++) {
        const doc = (await store.get(`k${i}`))!;
        expect(Object.keys(doc.steps).sort()).toEqual([...steps].sort());
        const tuple = await checkpointer.getTuple({ configurable: { thread_id: `k${i}`, checkpoint_ns: '' } });
        expect(tuple?.checkpoint.id).toBe(`k${i}-3`);
      }
    } finally {
      await stores.close();
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await admin.end();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** An empty checkpoint with id `id`, as a graph writes one. */
function checkpointOf(id: string): Parameters<PostgresSaver['put']>[1] {
  return { v: 4, id, ts: new Date().toISOString(), channel_values: {}, channel_versions: {}, versions_seen: {} };
}
