/**
 * The job operations behind the routes and the command line (src/service/job-service.ts), through the routes in
 * process (`app.inject`, one app on a store and queue prefix of its own per test) and through the command line's
 * `retry` and `delete` on the same store and Redis. Jobs are put in the state each test needs through the store: no
 * test reads what another made.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/lib/log.js';
import type { JobInput } from '../src/lib/types.js';
import { closeApiParts, openApiParts } from '../src/server/api.js';
import { buildApp, type App } from '../src/server/app.js';
import type { ApiParts } from '../src/server/http.js';
import { dropPrefix, runCli, tempDir, TEST_REDIS_URL, uniquePrefix } from './helpers.js';

const TOKEN = 'job-service-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };
let dataDir: string;
let inbox: string;
let prefix: string;
let parts: ApiParts;
let app: App;

beforeEach(async () => {
  dataDir = tempDir('job-service');
  inbox = tempDir('job-service-inbox');
  prefix = uniquePrefix('job-service');
  const profiles = path.join(dataDir, 'profiles.json');
  fs.writeFileSync(profiles, JSON.stringify({ avatar: { thumbnails: { widths: [256], fit: 'cover' } } }));
  const config = loadConfig({
    PROFILES_FILE: profiles,
    DATA_DIR: dataDir,
    QUEUE_PREFIX: prefix,
    INPUT_ROOTS: inbox,
    API_TOKEN: TOKEN,
    LOG_LEVEL: 'silent',
  });
  parts = await openApiParts(config, createLogger('silent'), TEST_REDIS_URL);
  app = await buildApp(parts);
});

afterEach(async () => {
  await app?.close();
  await closeApiParts(parts);
  await dropPrefix(TEST_REDIS_URL, prefix);
  fs.rmSync(dataDir, { recursive: true, force: true });
  fs.rmSync(inbox, { recursive: true, force: true });
});

const input = (jobId: string): JobInput => ({ jobId, file: { path: path.join(inbox, `${jobId}.jpg`) } });
const failed = (jobId: string, code: 'ENCRYPTED' | 'TIMEOUT') =>
  parts.stores.store.endBeforeStart(input(jobId), 'failed', { code, message: 'it failed', step: null });

test('retry: 409 for a failure that cannot change; a transient one is reopened and queued as its next run', async () => {
  await failed('locked', 'ENCRYPTED');
  const refused = await app.inject({ method: 'POST', url: '/jobs/locked/retry', headers: auth });
  expect(refused.statusCode).toBe(409);
  expect(refused.json()).toMatchObject({ error: { code: 'CONFLICT' } });

  await failed('slow', 'TIMEOUT');
  const retried = await app.inject({ method: 'POST', url: '/jobs/slow/retry', headers: auth });
  expect(retried.statusCode).toBe(202);
  expect(retried.json()).toMatchObject({ id: 'slow', status: 'queued', error: null });
  expect((await parts.stores.store.getRetry('slow'))?.generation).toBe(1);
  // The next run's message, beside the first one's: the same job id, run r1.
  const message = await parts.producer.queue.getJob('slow-r1');
  expect(message?.data).toMatchObject({ jobId: 'slow', file: { path: path.join(inbox, 'slow.jpg') } });

  expect((await app.inject({ method: 'POST', url: '/jobs/nobody/retry', headers: auth })).statusCode).toBe(404);
  expect((await app.inject({ method: 'POST', url: '/jobs/slow/retry' })).statusCode).toBe(401);
});

test('delete: 409 while a job has not ended; a finished one goes with its artifacts and upload', async () => {
  // (An API on a new database that has never run a graph: the checkpoint tables exist all the same.)
  await parts.stores.store.createOrGet(input('waiting'));
  const busy = await app.inject({ method: 'DELETE', url: '/jobs/waiting', headers: auth });
  expect(busy.statusCode).toBe(409);
  expect(busy.json<{ error: { message: string } }>().error.message).toMatch(/queued: cancel it first/);

  await failed('done', 'TIMEOUT');
  await parts.artifacts.write('done', 'text.txt', 'words');
  fs.mkdirSync(path.join(dataDir, 'uploads', 'done'), { recursive: true });
  const gone = await app.inject({ method: 'DELETE', url: '/jobs/done', headers: auth });
  expect(gone.statusCode).toBe(204);
  expect((await app.inject({ url: '/jobs/done' })).json()).toMatchObject({ error: { code: 'NOT_FOUND' } });
  expect(fs.existsSync(parts.artifacts.dir('done'))).toBe(false);
  expect(fs.existsSync(path.join(dataDir, 'uploads', 'done'))).toBe(false);
});

test('cancel: 409 for a job that has ended; a JSON job is created under INPUT_ROOTS only', async () => {
  await failed('over', 'TIMEOUT');
  const ended = await app.inject({ method: 'POST', url: '/jobs/over/cancel', headers: auth });
  expect(ended.statusCode).toBe(409);

  const file = path.join(inbox, 'photo.jpg');
  fs.writeFileSync(file, 'not really a photo');
  const created = await app.inject({ method: 'POST', url: '/jobs', headers: auth, payload: { file: { path: file } } });
  expect(created.statusCode).toBe(202);
  const { id } = created.json<{ id: string }>();
  expect((await parts.stores.store.get(id))?.status).toBe('queued');
  expect((await parts.producer.queue.getJob(id))?.data).toMatchObject({ jobId: id, file: { path: file } });

  const outside = await app.inject({
    method: 'POST',
    url: '/jobs',
    headers: auth,
    payload: { file: { path: path.join(dataDir, '..', 'elsewhere.jpg') } },
  });
  expect(outside.statusCode).toBe(400);
  expect(outside.json()).toMatchObject({ error: { code: 'INVALID_INPUT' } });
});

test('the command line retries and deletes through the same operations, on the store and Redis directly', async () => {
  await failed('cli-locked', 'ENCRYPTED');
  await failed('cli-slow', 'TIMEOUT');
  // The app's connections stay open: the command line is another process on the same store and queue.
  const env = { DATA_DIR: dataDir, QUEUE_PREFIX: prefix, REDIS_URL: TEST_REDIS_URL, MEDIA_ORCHESTRATOR_URL: 'none' };
  const refused = await runCli(['retry', 'cli-locked'], env, 60_000);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toMatch(/ENCRYPTED|cannot change|will fail the same way/i);
  const retried = await runCli(['retry', 'cli-slow'], env, 60_000);
  expect(retried.code, retried.stderr).toBe(0);
  expect((await parts.stores.store.get('cli-slow'))?.status).toBe('queued');
  expect(await parts.producer.queue.getJob('cli-slow-r1')).toBeDefined();

  const busy = await runCli(['delete', 'cli-slow'], env, 60_000);
  expect(busy.code).toBe(1);
  expect(busy.stderr).toContain('cancel it first');
  const deleted = await runCli(['delete', 'cli-locked'], env, 60_000);
  expect(deleted.code, deleted.stderr).toBe(0);
  expect(await parts.stores.store.get('cli-locked')).toBeNull();
});

test('instructions and a profile come with a JSON or a multipart job; a bad key or an unknown profile is refused', async () => {
  const file = path.join(inbox, 'face.jpg');
  fs.writeFileSync(file, 'not really a photo');
  const instructions = { thumbnails: { widths: [128], format: 'jpeg' }, skip: ['analyzeImage'] };
  const json = await app.inject({
    method: 'POST',
    url: '/jobs',
    headers: auth,
    payload: { file: { path: file }, instructions, profile: 'avatar' },
  });
  expect(json.statusCode).toBe(202);
  const created = json.json<{ id: string; instructions: unknown; profile: string }>();
  expect(created).toMatchObject({ instructions, profile: 'avatar' });
  // What the orchestrator will run with travels in the JOB_CREATED message.
  expect((await parts.producer.queue.getJob(created.id))?.data).toMatchObject({ instructions, profile: 'avatar' });

  const refused = async (payload: Record<string, unknown>) => {
    const res = await app.inject({
      method: 'POST',
      url: '/jobs',
      headers: auth,
      payload: { file: { path: file }, ...payload },
    });
    expect(res.statusCode).toBe(400);
    return res.json<{ error: { code: string; message: string } }>().error;
  };
  const badKey = await refused({ instructions: { thumbnails: { widths: [128], colour: 'red' } } });
  expect(badKey.code).toBe('INVALID_INPUT');
  expect(badKey.message).toMatch(/instructions\.thumbnails: .*colour/);
  const badProfile = await refused({ profile: 'banner' });
  expect(badProfile.code).toBe('INVALID_INPUT');
  expect(badProfile.message).toMatch(/profile "banner" is not defined \(PROFILES_FILE has avatar\)/);

  // Multipart: the same, as fields.
  const multipart = async (fields: Record<string, string>) => {
    const form = new FormData();
    for (const [k, v] of Object.entries(fields)) form.append(k, v);
    form.append('file', new Blob([fs.readFileSync(file)]), 'face.jpg');
    const req = new Request('http://local/jobs', { method: 'POST', body: form });
    return app.inject({
      method: 'POST',
      url: '/jobs',
      headers: { ...auth, 'content-type': req.headers.get('content-type')! },
      payload: Buffer.from(await req.arrayBuffer()),
    });
  };
  const upload = await multipart({ instructions: JSON.stringify(instructions), profile: 'avatar' });
  expect(upload.statusCode).toBe(202);
  expect(upload.json()).toMatchObject({ instructions, profile: 'avatar' });
  const badUpload = await multipart({ instructions: JSON.stringify({ skip: ['validate'] }) });
  expect(badUpload.statusCode).toBe(400);
  const uploadError = badUpload.json<{ error: { code: string; message: string } }>().error;
  expect(uploadError.code).toBe('INVALID_INPUT');
  expect(uploadError.message).toMatch(/skip\.0/);
  // Nothing was kept of the refused upload.
  const uploads = fs.readdirSync(path.join(dataDir, 'uploads'));
  expect(uploads).toEqual([upload.json<{ id: string }>().id]);
});

test('submit --instructions and --profile put them in the message; a bad key is refused before anything is sent', async () => {
  const file = path.join(inbox, 'clip.jpg');
  fs.writeFileSync(file, 'bytes');
  const env = { DATA_DIR: dataDir, QUEUE_PREFIX: prefix, REDIS_URL: TEST_REDIS_URL, MEDIA_ORCHESTRATOR_URL: 'none' };
  const sent = await runCli(
    ['submit', '--json', '--profile', 'avatar', '--instructions', '{"skip":["analyzeImage"]}', file],
    env,
    60_000,
  );
  expect(sent.code, sent.stderr).toBe(0);
  const doc = JSON.parse(sent.stdout) as { id: string };
  expect((await parts.producer.queue.getJob(doc.id))?.data).toMatchObject({
    profile: 'avatar',
    instructions: { skip: ['analyzeImage'] },
  });
  const refused = await runCli(['submit', '--instructions', '{"skip":["validate"],"size":2}', file], env, 60_000);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toMatch(/--instructions: .*(skip|size)/);
  expect(await parts.producer.queue.getJobCounts()).toMatchObject({ waiting: 1 });
});
