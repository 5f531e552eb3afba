/**
 * The HTTP API against the running service (`start --role all` in its own process, real Redis, real media): every
 * route, its error answers and its response schema; SSE with resume; security (auth, traversal, sizes, types, rates).
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import { freePort } from '../src/lib/net.js';
import { createProducer } from '../src/queue/producer.js';
import { TERMINAL_STATUSES, type JobDocument } from '../src/lib/types.js';
import { ErrorBody, JobDocumentSchema, JobList } from '../src/server/schemas.js';
import {
  CORPUS,
  dropPrefix,
  readEvents,
  ServiceProcess,
  tempDir,
  TEST_REDIS_URL,
  storedJob,
  TestState,
  uniquePrefix,
} from './helpers.js';

const TOKEN = 'test-token-0123456789abcdef';
const prefix = uniquePrefix('api');
let state: TestState;
let dataDir: string;
let inbox: string;
let service: ServiceProcess;
let base: string;
const auth = { authorization: `Bearer ${TOKEN}` };

async function upload(file: string, fields: Record<string, string> = {}, headers: Record<string, string> = auth) {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  form.append('file', new Blob([fs.readFileSync(file)]), path.basename(file));
  return fetch(`${base}/jobs`, { method: 'POST', body: form, headers });
}

async function finished(id: string, timeoutMs = 60_000): Promise<JobDocument> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const doc = (await (await fetch(`${base}/jobs/${id}`)).json()) as JobDocument;
    if (TERMINAL_STATUSES.includes(doc.status)) return doc;
    if (Date.now() > deadline) throw new Error(`job ${id} did not finish: ${JSON.stringify(doc)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * GET with the path sent exactly as written (fetch would normalise `..`), from `localAddress` (any 127.x.y.z is this
 * machine: a client address of its own, with its own rate limits).
 */
function rawGet(
  pathname: string,
  localAddress = '127.0.0.1',
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(base);
    const options = { host: u.hostname, port: u.port, path: pathname, method: 'GET', localAddress };
    const req = http.request(options, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  state = await TestState.create('api');
  dataDir = state.dataDir;
  inbox = tempDir('api-inbox');
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const profiles = path.join(inbox, 'profiles.yaml');
  fs.writeFileSync(profiles, 'small:\n  thumbnails: { widths: [48], format: jpeg }\n  skip: [analyzeImage]\n');
  service = await new ServiceProcess([], {
    PROFILES_FILE: profiles,
    ...state.env,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: prefix,
    INPUT_ROOTS: `${CORPUS},${inbox}`,
    PORT: String(port),
    API_TOKEN: TOKEN,
    MAX_UPLOAD_BYTES: String(1024 * 1024),
    UPLOAD_RATE_LIMIT: '40',
    SEARCH_RATE_LIMIT: '30',
  }).ready();
}, 90_000);

afterAll(async () => {
  await service?.stop();
  await dropPrefix(TEST_REDIS_URL, prefix);
  await state?.drop();
  fs.rmSync(inbox, { recursive: true, force: true });
});

describe('jobs', () => {
  // Made once and only read by the tests: a photo uploaded (its answer kept) and a PDF named by path, both finished.
  let uploaded: { status: number; location: string | null; doc: JobDocument };
  let imageJob: JobDocument;
  let pdfJob: JobDocument;

  beforeAll(async () => {
    const res = await upload(path.join(CORPUS, 'image/portrait-exif-orientation-6.jpg'), {
      userId: 'u-api',
      priority: '3',
    });
    uploaded = { status: res.status, location: res.headers.get('location'), doc: (await res.json()) as JobDocument };
    const pdf = await fetch(`${base}/jobs`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ file: { path: path.join(CORPUS, 'pdf/three-pages.pdf') } }),
    });
    const pdfId = ((await pdf.json()) as JobDocument).id;
    [imageJob, pdfJob] = await Promise.all([finished(uploaded.doc.id), finished(pdfId)]);
  }, 120_000);

  test('POST /jobs (multipart) answers 202 with the job document and its Location', () => {
    expect(uploaded.status).toBe(202);
    const doc = JobDocumentSchema.parse(uploaded.doc);
    expect(uploaded.location).toBe(`/jobs/${doc.id}`);
    expect(doc).toMatchObject({
      status: 'queued',
      user: { id: 'u-api' },
      priority: 3,
      file: { name: 'portrait-exif-orientation-6.jpg' },
    });
    expect(JobDocumentSchema.parse(imageJob).status).toBe('completed');
  });

  test('POST /jobs (JSON) takes a path under INPUT_ROOTS, and only there', async () => {
    const ok = await fetch(`${base}/jobs`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ file: { path: path.join(CORPUS, 'pdf/three-pages.pdf') }, user: { id: 'u-json' } }),
    });
    expect(ok.status).toBe(202);
    const doc = JobDocumentSchema.parse(await ok.json());
    expect((await finished(doc.id)).fileType).toBe('pdf');

    for (const p of ['/etc/passwd', `${CORPUS}/../../etc/passwd`]) {
      const res = await fetch(`${base}/jobs`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ file: { path: p } }),
      });
      expect(res.status, p).toBe(400);
      expect(ErrorBody.parse(await res.json()).error.code).toBe('INVALID_INPUT');
    }
    const bad = await fetch(`${base}/jobs`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ file: { path: 42 } }),
    });
    expect(bad.status).toBe(400);
    expect(ErrorBody.parse(await bad.json()).error.code).toBe('BAD_REQUEST');
    // The input schema is closed: no internal state (a forged retry), no unknown keys, BullMQ's real priority range.
    const image = path.join(CORPUS, 'image/320x240.jpg');
    for (const body of [
      { file: { path: image }, options: { retry: { generation: 1, previous: { steps: {}, results: {} } } } },
      { file: { path: image, retry: {} } },
      { file: { path: image }, user: { id: 'u', admin: true } },
      { file: { path: image }, priority: 2_097_152 },
    ]) {
      const res = await fetch(`${base}/jobs`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(ErrorBody.parse(await res.json()).error.message, JSON.stringify(body)).toMatch(
        /options|retry|admin|priority|2097151/,
      );
    }
    const broken = await fetch(`${base}/jobs`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: '{"file":',
    });
    expect(broken.status).toBe(400);
    ErrorBody.parse(await broken.json());
  });

  test('an Idempotency-Key makes a retried upload the same job', async () => {
    const file = path.join(CORPUS, 'image/320x240.jpg');
    const first = JobDocumentSchema.parse(
      await (await upload(file, {}, { ...auth, 'idempotency-key': 'order-77' })).json(),
    );
    const second = await upload(file, {}, { ...auth, 'idempotency-key': 'order-77' });
    expect(second.status).toBe(202);
    expect(JobDocumentSchema.parse(await second.json()).id).toBe(first.id);
    await finished(first.id);
    const list = JobList.parse(await (await fetch(`${base}/jobs?limit=200`)).json());
    expect(list.jobs.filter((j) => j.id === first.id)).toHaveLength(1);
    // The same key with a different request is the client's mistake, not the first job returned silently.
    const other = await upload(path.join(CORPUS, 'image/flowers.jpeg'), {}, { ...auth, 'idempotency-key': 'order-77' });
    expect(other.status).toBe(422);
    expect(ErrorBody.parse(await other.json()).error.code).toBe('IDEMPOTENCY_KEY_REUSED');
    const json = (key: string, body: unknown) =>
      fetch(`${base}/jobs`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify(body),
      });
    const pdf = { file: { path: path.join(CORPUS, 'pdf/three-pages.pdf') }, user: { id: 'u-1' } };
    expect((await json('order-78', pdf)).status).toBe(202);
    // Key order does not make a request different; a different user does.
    expect((await json('order-78', { user: { id: 'u-1' }, file: pdf.file })).status).toBe(202);
    expect((await json('order-78', { ...pdf, user: { id: 'u-2' } })).status).toBe(422);
  });

  test('concurrent uploads with one Idempotency-Key make one job and store one file', async () => {
    const file = path.join(CORPUS, 'image/320x240.jpg');
    const answers = await Promise.all(
      Array.from({ length: 6 }, () => upload(file, {}, { ...auth, 'idempotency-key': 'burst-1' })),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(6).fill(202));
    const ids = new Set(await Promise.all(answers.map(async (a) => JobDocumentSchema.parse(await a.json()).id)));
    expect(ids.size).toBe(1);
    const [id] = [...ids];
    expect(fs.readdirSync(path.join(dataDir, 'uploads', id!))).toEqual(['320x240.jpg']);
    // Written once, whole: not six writers truncating each other's file.
    expect(fs.readFileSync(path.join(dataDir, 'uploads', id!, '320x240.jpg')).equals(fs.readFileSync(file))).toBe(true);
    await finished(id!);
  });

  test('GET /jobs/:id: 404 for an unknown job, 400 for a malformed id', async () => {
    const missing = await fetch(`${base}/jobs/no-such-job`);
    expect(missing.status).toBe(404);
    expect(ErrorBody.parse(await missing.json()).error.code).toBe('NOT_FOUND');
    const malformed = await fetch(`${base}/jobs/bad%3Aid`);
    expect(malformed.status).toBe(400);
    ErrorBody.parse(await malformed.json());
  });

  test('GET /jobs filters and pages with a cursor', async () => {
    const byUser = JobList.parse(await (await fetch(`${base}/jobs?user=u-api`)).json());
    expect(byUser.jobs.map((j) => j.id)).toEqual([imageJob.id]);
    const pdfs = JobList.parse(await (await fetch(`${base}/jobs?fileType=pdf&status=completed`)).json());
    expect(pdfs.jobs.map((j) => j.id)).toContain(pdfJob.id);
    expect(pdfs.jobs.map((j) => j.id)).not.toContain(imageJob.id);
    expect(pdfs.jobs.every((j) => j.fileType === 'pdf')).toBe(true);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = JobList.parse(
        await (await fetch(`${base}/jobs?limit=1${cursor ? `&cursor=${cursor}` : ''}`)).json(),
      );
      seen.push(...page.jobs.map((j) => j.id));
      cursor = page.nextCursor;
    } while (cursor);
    const all = JobList.parse(await (await fetch(`${base}/jobs?limit=200`)).json()).jobs.map((j) => j.id);
    expect(all).toEqual(expect.arrayContaining([imageJob.id, pdfJob.id]));
    expect(seen).toEqual(all);
    expect((await fetch(`${base}/jobs?limit=0`)).status).toBe(400);
    expect((await fetch(`${base}/jobs?status=bogus`)).status).toBe(400);
    // A cursor this API never gave out is the caller's mistake, not page one.
    for (const garbage of ['garbage', Buffer.from('[1,2]').toString('base64url'), '%00'])
      expect((await fetch(`${base}/jobs?cursor=${garbage}`)).status, garbage).toBe(400);
  });

  test('GET /jobs?q= finds a video by a word only its subtitles say, and a photo by a label the detector gave it', async () => {
    const create = async (file: string): Promise<JobDocument> => {
      const res = await fetch(`${base}/jobs`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ file: { path: path.join(CORPUS, file) } }),
      });
      expect(res.status).toBe(202);
      return finished(JobDocumentSchema.parse(await res.json()).id, 180_000);
    };
    // The subtitle track says "... when no speech model is configured"; the park photo has a dog in it.
    const [video, photo] = await Promise.all([create('video/with-subtitles.mkv'), create('image/cmyk-no-profile.jpg')]);
    expect(video.results.transcript?.provider).toBe('subtitles');
    expect(photo.results.analysis?.labels.map((l) => l.name)).toContain('dog');

    const search = async (query: string) => JobList.parse(await (await fetch(`${base}/jobs?q=${query}`)).json());
    const spoken = await search('configured');
    expect(spoken.jobs.map((j) => j.id)).toContain(video.id);
    expect(spoken.jobs.map((j) => j.id)).not.toContain(photo.id);
    const hit = spoken.matches!.find((m) => m.id === video.id)!;
    expect(hit.snippet.filter((p) => p.match).map((p) => p.text.toLowerCase())).toContain('configured');

    const dogs = await search('dogs');
    expect(dogs.jobs.map((j) => j.id)).toContain(photo.id);
    expect(dogs.jobs.map((j) => j.id)).not.toContain(video.id);
    expect((await search('dog')).jobs.filter((j) => j.fileType !== 'image')).toEqual([]);
    // Filters apply to the results; an over-long query is refused.
    expect((await search('dog&fileType=video')).jobs).toEqual([]);
    expect((await fetch(`${base}/jobs?q=${'a'.repeat(501)}`)).status).toBe(400);
  }, 240_000);

  test('searches are rate limited per client; listing is not, and an empty q is the plain list', async () => {
    // A client address no other test uses, so its allowance (SEARCH_RATE_LIMIT=30 a minute) is whole.
    const client = '127.0.0.42';
    const answers = [];
    for (let i = 0; i < 32; i++) answers.push(await rawGet(`/jobs?q=anything${i}`, client));
    // Exactly 30 answered, counting down; then refused, saying so and when to come back.
    expect(answers.map((a) => a.status)).toEqual([...Array<number>(30).fill(200), 429, 429]);
    expect(answers.slice(0, 30).map((a) => Number(a.headers['x-ratelimit-remaining']))).toEqual(
      Array.from({ length: 30 }, (_, i) => 29 - i),
    );
    for (const refused of answers.slice(30)) {
      expect(ErrorBody.parse(JSON.parse(refused.body)).error).toMatchObject({
        code: 'RATE_LIMITED',
        message: 'too many searches; try again later',
      });
      expect(refused.headers).toMatchObject({ 'x-ratelimit-limit': '30', 'x-ratelimit-remaining': '0' });
      expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
      expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(60);
    }
    // Per client: another address still searches; and for this one, listing is not counted.
    expect((await rawGet('/jobs?q=anything', '127.0.0.43')).status).toBe(200);
    for (const listing of ['/jobs?limit=5', '/jobs?q=%20&limit=5']) {
      const listed = await rawGet(listing, client);
      expect(listed.status, listing).toBe(200);
      expect(JobList.parse(JSON.parse(listed.body)).matches, listing).toBeUndefined();
    }
  });

  test('a JOB_CREATED message with a profile and instructions runs as they say; an unknown key fails its job', async () => {
    const producer = createProducer({ redisUrl: TEST_REDIS_URL, prefix });
    try {
      const photo = path.join(CORPUS, 'image/320x240.jpg');
      const { jobId } = await producer.enqueueJob({
        file: { path: photo },
        profile: 'small',
        instructions: { thumbnails: { widths: [48, 80] } },
      });
      const doc = await finished(jobId);
      expect(doc.status).toBe('completed');
      expect(doc.results.thumbnails?.map((t) => [t.width, t.format])).toEqual([
        [48, 'jpeg'],
        [80, 'jpeg'],
      ]);
      expect(doc.steps.analyzeImage?.status).toBe('skipped');
      expect(doc).toMatchObject({ profile: 'small', instructions: { thumbnails: { widths: [48, 80] } } });

      // A message the producer library would refuse, written straight to the queue: the job fails, naming the key.
      await producer.queue.add('JOB_CREATED', { jobId: 'bad-instr', file: { path: photo }, instructions: { size: 1 } });
      const bad = await finished('bad-instr');
      expect(bad.error?.code).toBe('INVALID_INPUT');
      expect(bad.error?.message).toMatch(/instructions: .*size/);
    } finally {
      await producer.close();
    }
  });

  test('artifacts are served, and no path leaves the job folder', async () => {
    const thumb = (imageJob.results.thumbnails ?? [])[0]!;
    const res = await fetch(`${base}${thumb.url}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/webp');
    expect(Buffer.from(await res.arrayBuffer()).length).toBe(thumb.bytes);

    // A link planted in the job's folder must not be followed out of it.
    const link = path.join(dataDir, 'artifacts', imageJob.id, 'link.txt');
    fs.symlinkSync('/etc/passwd', link);
    onTestFinished(() => fs.rmSync(link, { force: true }));
    for (const p of [
      `/jobs/${imageJob.id}/artifacts/..%2F..%2Forchestrator.db`,
      `/jobs/${imageJob.id}/artifacts/%2e%2e%2f%2e%2e%2forchestrator.db`,
      `/jobs/${imageJob.id}/artifacts/../../orchestrator.db`,
      `/jobs/${imageJob.id}/artifacts/..%5c..%5corchestrator.db`,
      `/jobs/${imageJob.id}/artifacts/link.txt`,
      `/jobs/${imageJob.id}/artifacts/%00`,
      `/jobs/..%2F${imageJob.id}/artifacts/thumb-160.webp`,
    ]) {
      const r = await rawGet(p);
      expect([400, 404], p).toContain(r.status);
      expect(r.body).not.toContain('root:');
      expect(r.body).not.toContain('SQLite');
      ErrorBody.parse(JSON.parse(r.body));
    }
  });

  test('a disallowed type is accepted as a job and fails with UNSUPPORTED_TYPE', async () => {
    const doc = JobDocumentSchema.parse(await (await upload(path.join(CORPUS, 'bad/text-named.png'))).json());
    const done = await finished(doc.id);
    expect(done.status).toBe('failed');
    expect(done.error?.code).toBe('UNSUPPORTED_TYPE');
  });

  test('an upload over MAX_UPLOAD_BYTES is refused with 413 and leaves nothing behind', async () => {
    const big = path.join(dataDir, 'big.bin');
    fs.writeFileSync(big, Buffer.alloc(2 * 1024 * 1024, 7));
    const before = fs.readdirSync(path.join(dataDir, 'uploads')).length;
    const res = await upload(big);
    expect(res.status).toBe(413);
    const error = ErrorBody.parse(await res.json()).error;
    expect(error.code).toBe('PAYLOAD_TOO_LARGE');
    expect(error.message).toMatch(/file is over the limit of \d+ bytes/);
    expect(fs.readdirSync(path.join(dataDir, 'uploads')).length).toBe(before);
    // Other limits are named for what they are: too many fields is not "the file is too big".
    const fields = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`f${i}`, 'x']));
    const many = await upload(path.join(CORPUS, 'image/320x240.jpg'), fields);
    expect(many.status).toBe(413);
    expect(ErrorBody.parse(await many.json()).error.message).toMatch(/at most 10 fields|at most 11 parts/);
  });

  test('write routes need the bearer token', async () => {
    const file = path.join(CORPUS, 'image/320x240.jpg');
    const attempts: Record<string, string>[] = [
      {},
      { authorization: 'Bearer wrong-token-wrong-token' },
      { authorization: TOKEN },
    ];
    for (const headers of attempts) {
      const res = await upload(file, {}, headers);
      expect(res.status).toBe(401);
      expect(ErrorBody.parse(await res.json()).error.code).toBe('UNAUTHORIZED');
    }
    expect((await fetch(`${base}/jobs/${imageJob.id}/cancel`, { method: 'POST' })).status).toBe(401);
    expect((await fetch(`${base}/jobs/${imageJob.id}`, { method: 'DELETE' })).status).toBe(401);
    // The scheme is case-insensitive (RFC 9110).
    for (const scheme of ['bearer', 'BEARER']) {
      const res = await fetch(`${base}/jobs/${imageJob.id}/cancel`, {
        method: 'POST',
        headers: { authorization: `${scheme} ${TOKEN}` },
      });
      // Authorized: the job has ended, so there is nothing to cancel.
      expect(res.status, scheme).toBe(409);
    }
    // Reads stay open.
    expect((await fetch(`${base}/jobs/${imageJob.id}`)).status).toBe(200);
  });

  test('cancel: 409 for a job that has ended; 404 for an unknown job', async () => {
    const res = await fetch(`${base}/jobs/${imageJob.id}/cancel`, { method: 'POST', headers: auth });
    expect(res.status).toBe(409);
    expect(ErrorBody.parse(await res.json()).error.message).toMatch(/has already ended: completed/);
    expect((await storedJob(state, imageJob.id))?.status).toBe('completed');
    expect((await fetch(`${base}/jobs/nope/cancel`, { method: 'POST', headers: auth })).status).toBe(404);
  });

  test('retry re-runs a failed job once its cause is gone; 409 for a job with nothing to retry', async () => {
    const late = path.join(inbox, 'late.jpg');
    const created = await fetch(`${base}/jobs`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ file: { path: late } }),
    });
    const doc = JobDocumentSchema.parse(await created.json());
    const failed = await finished(doc.id);
    expect(failed.error).toMatchObject({ code: 'FILE_NOT_FOUND', step: 'validate' });
    fs.copyFileSync(path.join(CORPUS, 'image/320x240.jpg'), late);
    const retried = await fetch(`${base}/jobs/${doc.id}/retry`, { method: 'POST', headers: auth });
    expect(retried.status).toBe(202);
    expect(JobDocumentSchema.parse(await retried.json()).status).toBe('queued');
    const done = await finished(doc.id);
    expect(done.status).toBe('completed');
    expect(done.error).toBeNull();
    expect(done.steps.validate?.status).toBe('succeeded');
    const again = await fetch(`${base}/jobs/${doc.id}/retry`, { method: 'POST', headers: auth });
    expect(again.status).toBe(409);
    expect(ErrorBody.parse(await again.json()).error.code).toBe('CONFLICT');
    expect((await fetch(`${base}/jobs/nope/retry`, { method: 'POST', headers: auth })).status).toBe(404);
    expect((await fetch(`${base}/jobs/${doc.id}/retry`, { method: 'POST' })).status).toBe(401);
  });

  test('DELETE removes the job, its checkpoints, upload and artifacts', async () => {
    const created = JobDocumentSchema.parse(await (await upload(path.join(CORPUS, 'image/320x240.jpg'))).json());
    const { id } = await finished(created.id);
    for (const dir of ['artifacts', 'uploads']) expect(fs.existsSync(path.join(dataDir, dir, id)), dir).toBe(true);
    const res = await fetch(`${base}/jobs/${id}`, { method: 'DELETE', headers: auth });
    expect(res.status).toBe(204);
    expect((await fetch(`${base}/jobs/${id}`)).status).toBe(404);
    expect(await storedJob(state, id)).toBeNull();
    expect(fs.existsSync(path.join(dataDir, 'artifacts', id))).toBe(false);
    expect(fs.existsSync(path.join(dataDir, 'uploads', id))).toBe(false);
    expect((await fetch(`${base}/jobs/${id}`, { method: 'DELETE', headers: auth })).status).toBe(404);
  });
});

describe('live events', () => {
  test('SSE delivers every step transition in order, then the terminal status; Last-Event-ID resumes', async () => {
    const doc = JobDocumentSchema.parse(await (await upload(path.join(CORPUS, 'video/with-subtitles.mkv'))).json());
    const all = await readEvents(`${base}/jobs/${doc.id}/events`);
    const final = await finished(doc.id);
    // Strictly increasing ids, a status event first (queued) and last (terminal).
    expect(all.map((e) => e.id)).toEqual([...all.map((e) => e.id)].sort((a, b) => a - b));
    expect(all[0]).toMatchObject({ type: 'status', data: { status: 'queued' } });
    expect(all.at(-1)).toMatchObject({ type: 'status', data: { status: final.status } });
    // Every step of the final document was announced running, then with its final status.
    for (const [step, record] of Object.entries(final.steps)) {
      const mine = all.filter((e) => e.type === 'step' && e.data.step === step).map((e) => e.data.status);
      if (record.status !== 'skipped') expect(mine[0], step).toBe('running');
      expect(mine.at(-1), step).toBe(record.status);
    }
    // Reconnecting after any event gives exactly the events that followed it.
    const cut = all[Math.floor(all.length / 2)]!;
    const rest = await readEvents(`${base}/jobs/${doc.id}/events`, { 'last-event-id': String(cut.id) });
    expect(rest).toEqual(all.filter((e) => e.id > cut.id));
    expect((await fetch(`${base}/jobs/nope/events`)).status).toBe(404);
  });
});

describe('service routes', () => {
  test('healthz, readyz, metrics, graph, docs and unknown routes', async () => {
    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ ok: true, service: 'media-orchestrator' });
    expect(await (await fetch(`${base}/readyz`)).json()).toEqual({ redis: true, database: true });
    // What this test makes itself: one job that fails and one that completes, counted from before to after.
    const read = async () => {
      const text = await (await fetch(`${base}/metrics`)).text();
      const count = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
      return {
        text,
        unsupported: count(/^media_job_failures\{code="UNSUPPORTED_TYPE"\} (\d+)$/m),
        completed: count(/^media_jobs\{status="completed"\} (\d+)$/m),
      };
    };
    const before = await read();
    const made = await Promise.all(
      ['bad/text-named.png', 'image/320x240.jpg'].map(async (f) =>
        finished(JobDocumentSchema.parse(await (await upload(path.join(CORPUS, f))).json()).id),
      ),
    );
    expect(made.map((d) => d.status)).toEqual(['failed', 'completed']);
    const after = await read();
    expect(after.unsupported - before.unsupported).toBe(1);
    expect(after.completed - before.completed).toBe(1);
    expect(after.text).toMatch(/media_queue_depth\{queue="image",state="waiting"\} \d+/);
    expect(after.text).toMatch(/media_step_duration_seconds_bucket\{le="[\d.]+",step="validate",status="succeeded"\}/);
    expect(await (await fetch(`${base}/graph`)).text()).toContain('validate -.-> extractMetadata');
    const docs = await fetch(`${base}/docs/`);
    expect(docs.status).toBe(200);
    const openapi = (await (await fetch(`${base}/docs/json`)).json()) as { paths: Record<string, unknown> };
    for (const route of [
      '/jobs',
      '/jobs/{id}',
      '/jobs/{id}/cancel',
      '/jobs/{id}/retry',
      '/jobs/{id}/review',
      '/jobs/{id}/artifacts/{name}',
      '/jobs/{id}/events',
      '/healthz',
      '/readyz',
      '/metrics',
      '/summary',
    ]) {
      expect(Object.keys(openapi.paths), route).toContain(route);
    }
    // The job document's schema names the per-job instructions and the review, for API clients.
    expect(JSON.stringify(openapi)).toContain('awaiting_review');
    expect(JSON.stringify(openapi)).toContain('"instructions"');
    // Bull Board needs the token too, and then lists our queues.
    expect((await fetch(`${base}/admin/queues`)).status).toBe(401);
    expect((await fetch(`${base}/admin/queues`, { headers: auth })).status).toBe(200);
    const queues = (await (await fetch(`${base}/admin/queues/api/queues`, { headers: auth })).json()) as {
      queues: { name: string }[];
    };
    expect(queues.queues.map((q) => q.name)).toEqual(
      expect.arrayContaining(['jobs', 'light', 'image', 'video', 'document', 'ai']),
    );
    expect((await fetch(`${base}/`)).headers.get('content-type')).toMatch(/^text\/html/);
    const missing = await fetch(`${base}/nothing-here`);
    expect(missing.status).toBe(404);
    expect(ErrorBody.parse(await missing.json()).error.code).toBe('NOT_FOUND');
    // Security headers on every answer.
    const headers = (await fetch(`${base}/healthz`)).headers;
    expect(headers.get('x-content-type-options')).toBe('nosniff');
    expect(headers.get('content-security-policy')).toContain("default-src 'self'");
  });

  test('requests refused by authentication never spend the upload allowance', async () => {
    // (test/rate-limit.test.ts counts the allowance itself.)
    for (let i = 0; i < 45; i++) {
      const res = await fetch(`${base}/jobs`, { method: 'POST', headers: { authorization: 'Bearer nope' } });
      expect(res.status).toBe(401);
    }
  });
});
