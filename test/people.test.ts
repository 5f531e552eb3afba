/**
 * People from faces, end to end: portraits run through the real pipeline (the offline detector and description model,
 * the SQLite store), then the /people routes on the same data. The corpus holds four portraits of person A, three of
 * B and one of C (faces/person-*.jpg) and a group photo of strangers.
 *
 * What the calibration found (bench/people-calibrate.ts) decides the sets: person-b-3 is 0.469 from its nearest
 * picture of B, past PEOPLE_MAX_DISTANCE, and makes a person of its own, so it is in neither set.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/lib/log.js';
import type { JobInput } from '../src/lib/types.js';
import { createRuntime, type Runtime } from '../src/runtime.js';
import { closeApiParts, openApiParts } from '../src/server/api.js';
import { buildApp, type App } from '../src/server/app.js';
import type { ApiParts } from '../src/server/http.js';
import { openJobStore } from '../src/store/index.js';
import { CORPUS, dropPrefix, ROOT, TEST_REDIS_URL, tempDir, uniquePrefix, waitFor } from './helpers.js';

const portrait = (name: string) => path.join(CORPUS, 'faces', `${name}.jpg`);
/** Each person's pictures, in the order they arrive; the held-out pictures come after. */
const KNOWN = { a: ['person-a-4', 'person-a-8', 'person-a-6'], b: ['person-b-1', 'person-b-4'], c: ['person-c'] };
const HELD_OUT = { a: 'person-a-2' };
const TOKEN = 'people-test-token-0123456789';

const dir = tempDir('people');
const prefix = uniquePrefix('people');
const env = { DATA_DIR: path.join(dir, 'data'), QUEUE_PREFIX: prefix, API_TOKEN: TOKEN };
let runtime: Runtime;
let parts: ApiParts;
let app: App;

beforeAll(async () => {
  runtime = await createRuntime(loadConfig(env), createLogger('silent'));
}, 60_000);
afterAll(async () => {
  await app?.close();
  if (parts) await closeApiParts(parts);
  await runtime?.close();
  await dropPrefix(TEST_REDIS_URL, prefix);
  fs.rmSync(dir, { recursive: true, force: true });
});

async function run(jobId: string, file: string, extra: Partial<JobInput> = {}) {
  const doc = await runtime.runner.run({ jobId, file: { path: file }, user: { id: 'ann' }, ...extra });
  expect(doc.steps.analyzeImage?.status, JSON.stringify(doc.error)).toBe('succeeded');
  return doc;
}

/** The person each job's first face is in. */
async function personOf(jobId: string, owner: string | null = 'ann'): Promise<number | undefined> {
  const people = await runtime.store.people.listPeople(owner, 200);
  return people.find((p) => p.jobIds.includes(jobId))?.id;
}

describe('people from the portrait corpus', () => {
  test(
    "one person's pictures form one person, different people stay apart, a held-out picture joins its person",
    { timeout: 300_000 },
    async () => {
      for (const names of Object.values(KNOWN)) for (const name of names) await run(name, portrait(name));
      const people = await runtime.store.people.listPeople('ann', 200);
      expect(people.map((p) => [...p.jobIds].sort())).toEqual(Object.values(KNOWN).map((names) => [...names].sort()));

      const a = await personOf('person-a-4');
      await run(HELD_OUT.a, portrait(HELD_OUT.a));
      expect(await personOf(HELD_OUT.a)).toBe(a);
      expect((await runtime.store.people.getPerson(a!))!.faceCount).toBe(4);

      // Each face's crop is an artifact of its job: a JPEG of the face, at most 256 px.
      const crop = await sharp(path.join(env.DATA_DIR, 'artifacts', HELD_OUT.a, 'face-0.jpg')).metadata();
      expect(crop.format).toBe('jpeg');
      expect(Math.max(crop.width, crop.height)).toBeLessThanOrEqual(256);
      expect(Math.max(crop.width, crop.height)).toBeGreaterThan(100);
    },
  );

  test(
    'the faces of a group photo are as many people, and another owner sees none of them',
    { timeout: 120_000 },
    async () => {
      const doc = await run('group', portrait('group'), { user: { id: 'bob' } });
      const bob = await runtime.store.people.listPeople('bob', 200);
      expect(bob.length).toBeGreaterThanOrEqual(10);
      expect(bob.length).toBeLessThanOrEqual(doc.results.analysis!.faceCount!);
      for (const p of bob) expect(p).toMatchObject({ faceCount: 1, jobIds: ['group'] });
      for (const p of await runtime.store.people.listPeople('ann', 200)) expect(p.jobIds).not.toContain('group');
    },
  );

  test(
    'a job that says faces: false keeps its face boxes but records no face and no crop',
    { timeout: 60_000 },
    async () => {
      const doc = await run('private', portrait('person-b-3'), { instructions: { faces: false } });
      expect(doc.results.analysis!.faceCount).toBe(1);
      expect(await personOf('private')).toBeUndefined();
      expect(fs.existsSync(path.join(env.DATA_DIR, 'artifacts', 'private', 'face-0.jpg'))).toBe(false);
    },
  );
});

describe('/people', () => {
  beforeAll(async () => {
    parts = await openApiParts(loadConfig(env), createLogger('silent'), TEST_REDIS_URL);
    app = await buildApp(parts);
  });
  const auth = { authorization: `Bearer ${TOKEN}` };

  test('lists, shows, names and merges people; writes need the token; deleting a job deletes its faces', async () => {
    const list = await app.inject({ url: '/people?user=ann' });
    expect(list.statusCode).toBe(200);
    const people = list.json<{ people: { id: number; faceCount: number; cover: string; jobIds: string[] }[] }>().people;
    expect(people.map((p) => p.faceCount)).toEqual([4, 2, 1]);
    const [a, b, c] = people as [(typeof people)[0], (typeof people)[0], (typeof people)[0]];
    expect(a.cover).toMatch(/^\/jobs\/person-a-\d\/artifacts\/face-0\.jpg$/);
    const cover = await app.inject({ url: a.cover });
    expect(cover.statusCode).toBe(200);
    expect(cover.headers['content-type']).toBe('image/jpeg');
    expect((await app.inject({ url: '/people' })).json()).toEqual({ people: [] });

    const shown = await app.inject({ url: `/people/${b.id}?user=ann` });
    expect(shown.json()).toMatchObject({ id: b.id, user: 'ann', faceCount: 2, name: null });
    expect(
      shown
        .json<{ faces: { jobId: string }[] }>()
        .faces.map((f) => f.jobId)
        .sort(),
    ).toEqual(['person-b-1', 'person-b-4']);
    expect((await app.inject({ url: '/people/999999' })).statusCode).toBe(404);
    expect((await app.inject({ url: '/people/abc' })).statusCode).toBe(400);

    const name = (id: number, body: unknown, headers: Record<string, string> = auth) =>
      app.inject({ method: 'PATCH', url: `/people/${id}?user=ann`, headers, payload: body as object });
    expect((await name(b.id, { name: 'Bea' }, {})).statusCode).toBe(401);
    expect((await name(b.id, { name: 'x'.repeat(201) })).statusCode).toBe(400);
    expect((await name(b.id, { name: 'Bea', extra: 1 })).statusCode).toBe(400);
    expect((await name(b.id, { name: 'Bea' })).json()).toMatchObject({ name: 'Bea' });

    const merge = (into: number, person: number, headers: Record<string, string> = auth) =>
      app.inject({ method: 'POST', url: `/people/${into}/merge?user=ann`, headers, payload: { person } });
    const bobs = (await app.inject({ url: '/people?user=bob' })).json<{ people: { id: number }[] }>().people;
    expect((await merge(b.id, c.id, {})).statusCode).toBe(401);
    // Bob's person is not ann's: not found, as any person of another owner.
    expect((await merge(b.id, bobs[0]!.id)).statusCode).toBe(404);
    expect((await merge(b.id, 999_999)).statusCode).toBe(404);
    const merged = await merge(b.id, c.id);
    expect(merged.statusCode).toBe(200);
    expect(merged.json()).toMatchObject({ id: b.id, name: 'Bea', faceCount: 3 });
    expect((await app.inject({ url: `/people/${c.id}?user=ann` })).statusCode).toBe(404);

    // Deleting B's two pictures leaves the merged person with C's face only.
    for (const id of ['person-b-1', 'person-b-4'])
      expect((await app.inject({ method: 'DELETE', url: `/jobs/${id}`, headers: auth })).statusCode).toBe(204);
    expect((await app.inject({ url: `/people/${b.id}?user=ann` })).json()).toMatchObject({
      faceCount: 1,
      jobIds: ['person-c'],
    });
    expect((await app.inject({ method: 'DELETE', url: '/jobs/person-c', headers: auth })).statusCode).toBe(204);
    expect((await app.inject({ url: `/people/${b.id}?user=ann` })).statusCode).toBe(404);
  });

  test("detaches a face, deletes a person, finds jobs by a person's name; a person of another owner is not found", async () => {
    type Detail = { id: number; name: string | null; faceCount: number; cover: string; jobIds: string[] };
    const send = (
      method: 'PATCH' | 'POST' | 'DELETE',
      url: string,
      payload?: object,
      headers: Record<string, string> = auth,
    ) => app.inject({ method, url, headers, ...(payload && { payload }) });
    const found = async (q: string, user = 'ann') =>
      (await app.inject({ url: `/jobs?q=${encodeURIComponent(q)}&user=${user}` }))
        .json<{ jobs: { id: string }[] }>()
        .jobs.map((j) => j.id)
        .sort();
    const [a] = (await app.inject({ url: '/people?user=ann' })).json<{ people: Detail[] }>().people;
    const bob = (await app.inject({ url: '/people?user=bob' })).json<{ people: Detail[] }>().people[0]!;
    const aJobs = ['person-a-2', 'person-a-4', 'person-a-6', 'person-a-8'];
    expect(a).toMatchObject({ faceCount: 4 });
    expect([...a!.jobIds].sort()).toEqual(aJobs);

    // Named, the person's jobs are found by the name, for its owner only.
    expect(await found('lovelace')).toEqual([]);
    expect((await send('PATCH', `/people/${a!.id}?user=ann`, { name: 'Ada Lovelace' })).statusCode).toBe(200);
    expect(await found('lovelace')).toEqual(aJobs);
    expect(await found('ada lovelace')).toEqual(aJobs);
    expect(await found('lovelace', 'bob')).toEqual([]);

    // Every route answers 404 for a person of another owner (absent `user`: the jobs without one), 400 for bad ids.
    const other = [`/people/${a!.id}`, `/people/${a!.id}?user=bob`];
    for (const url of other) {
      expect((await app.inject({ url })).statusCode, url).toBe(404);
      expect((await send('PATCH', url, { name: 'Eve' })).statusCode, url).toBe(404);
      expect((await send('DELETE', url)).statusCode, url).toBe(404);
      expect((await send('POST', `${url.replace('?', '/faces/person-a-4/0/detach?')}`)).statusCode, url).toBe(404);
    }
    expect((await send('POST', `/people/${bob.id}/merge?user=bob`, { person: a!.id })).statusCode).toBe(404);
    expect((await send('POST', `/people/${a!.id}/merge?user=ann`, { person: bob.id })).statusCode).toBe(404);
    for (const url of [
      '/people/1/faces/..%2Fx/0/detach',
      '/people/1/faces/person-a-4/-1/detach',
      '/people/1/faces/person-a-4/x/detach',
      '/people/1/faces/person-a-4/200/detach',
      '/people/0/faces/person-a-4/0/detach',
    ])
      expect((await send('POST', url)).statusCode, url).toBe(400);
    expect((await send('PATCH', `/people/${a!.id}?user=ann`, { name: 'Ada\u0002' })).statusCode).toBe(400);
    expect((await send('PATCH', `/people/${a!.id}?user=${'u'.repeat(201)}`, { name: 'Ada' })).statusCode).toBe(400);
    expect((await send('DELETE', `/people/${a!.id}?user=ann`, undefined, {})).statusCode).toBe(401);
    expect((await send('POST', `/people/${a!.id}/faces/person-a-2/0/detach?user=ann`, undefined, {})).statusCode).toBe(
      401,
    );
    // Not a face of the person.
    expect((await send('POST', `/people/${a!.id}/faces/person-a-2/1/detach?user=ann`)).statusCode).toBe(404);
    expect((await send('POST', `/people/${a!.id}/faces/group/0/detach?user=ann`)).statusCode).toBe(404);

    // Detached, a face is a person of its own (no other of ann's people is near): the name and search follow.
    const detached = await send('POST', `/people/${a!.id}/faces/person-a-2/0/detach?user=ann`);
    expect(detached.statusCode).toBe(200);
    const { person, left } = detached.json<{ person: Detail; left: Detail }>();
    expect(person).toMatchObject({ name: null, faceCount: 1, jobIds: ['person-a-2'] });
    expect(person.cover).toBe('/jobs/person-a-2/artifacts/face-0.jpg');
    expect(left).toMatchObject({ id: a!.id, name: 'Ada Lovelace', faceCount: 3 });
    expect(left.cover).not.toContain('person-a-2');
    expect(await found('lovelace')).toEqual(aJobs.filter((j) => j !== 'person-a-2'));
    expect((await send('PATCH', `/people/${person.id}?user=ann`, { name: 'Grace' })).statusCode).toBe(200);
    expect(await found('grace')).toEqual(['person-a-2']);
    expect((await send('PATCH', `/people/${person.id}?user=ann`, { name: 'Hopper' })).statusCode).toBe(200);
    expect(await found('grace')).toEqual([]);
    expect(await found('hopper')).toEqual(['person-a-2']);

    // The new routes are in the API's description.
    const paths = Object.keys((await app.inject({ url: '/docs/json' })).json<{ paths: object }>().paths);
    expect(paths).toEqual(
      expect.arrayContaining(['/people/{id}', '/people/{id}/faces/{jobId}/{index}/detach', '/jobs/{id}/faces']),
    );

    // A job's faces, with their people.
    const faces = async (jobId: string) =>
      (await app.inject({ url: `/jobs/${jobId}/faces` })).json<{ faces: unknown[] }>().faces;
    expect(await faces('person-a-4')).toEqual([
      expect.objectContaining({
        index: 0,
        person: a!.id,
        described: true,
        crop: '/jobs/person-a-4/artifacts/face-0.jpg',
      }),
    ]);
    expect((await app.inject({ url: '/jobs/no-such-job/faces' })).statusCode).toBe(404);

    // Deleted, the person is gone; its jobs and crops stay, their faces without descriptor or person.
    expect((await send('DELETE', `/people/${a!.id}?user=ann`)).statusCode).toBe(204);
    expect((await app.inject({ url: `/people/${a!.id}?user=ann` })).statusCode).toBe(404);
    expect((await send('DELETE', `/people/${a!.id}?user=ann`)).statusCode).toBe(404);
    expect(await faces('person-a-4')).toEqual([expect.objectContaining({ index: 0, person: null, described: false })]);
    expect((await app.inject({ url: '/jobs/person-a-4' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/jobs/person-a-4/artifacts/face-0.jpg' })).statusCode).toBe(200);
    expect(await found('lovelace')).toEqual([]);
    expect(
      (await app.inject({ url: '/people?user=ann' })).json<{ people: Detail[] }>().people.map((p) => p.id),
    ).toEqual([person.id]);
  });
});

describe('a process killed while it places faces', () => {
  test(
    'loses nothing and repeats no face: each job has all its faces or none, and a rerun completes it',
    { timeout: 120_000 },
    async () => {
      const data = path.join(dir, 'killed');
      // As many faces as a picture may have (MAX_FACES): the kill most likely lands inside a job's transaction.
      const perJob = 200;
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/support/people-writer.ts')], {
        env: { ...process.env, DATA_DIR: data, FACES_PER_JOB: String(perJob) },
        stdio: 'ignore',
      });
      const config = loadConfig({ DATA_DIR: data });
      const counts = (): Map<string, number> => {
        const db = new Database(config.dbPath, { readonly: true });
        try {
          const rows = db.prepare('SELECT job_id, count(*) AS n FROM faces GROUP BY job_id').all() as {
            job_id: string;
            n: number;
          }[];
          return new Map(rows.map((r) => [r.job_id, r.n]));
        } finally {
          db.close();
        }
      };
      try {
        // The file exists before its tables: until the writer's store has migrated it, there is nothing to count.
        const started = () => {
          try {
            return counts().size >= 3;
          } catch {
            return false;
          }
        };
        await waitFor('faces of three jobs', () => fs.existsSync(config.dbPath) && started(), 60_000);
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
        const store = await openJobStore(config);
        try {
          const jobs = (await store.list({}, 200)).jobs.map((j) => j.id);
          const before = counts();
          for (const id of jobs) expect([undefined, perJob], id).toContain(before.get(id));
          // The step run again for every job: each ends with its faces once.
          const faces = Array.from({ length: perJob }, (_, index) => ({
            index,
            box: { x: index, y: 0, width: 10, height: 10 },
            score: 0.9,
            descriptor: null,
            crop: `face-${index}.jpg`,
          }));
          for (const id of jobs) expect(await store.people.recordFaces(id, faces)).toBe(!before.has(id));
          const after = counts();
          for (const id of jobs) expect(after.get(id), id).toBe(perJob);
        } finally {
          await store.close();
        }
      } finally {
        child.kill('SIGKILL');
      }
    },
  );
});
