/**
 * A private redis-server (AOF on, as production needs) is restarted in the middle of a run: the service reconnects
 * and every job finishes.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { freePort } from '../src/lib/net.js';
import { redisAnswers } from '../src/queue/connection.js';
import { createProducer } from '../src/queue/producer.js';
import {
  CORPUS,
  finishedJobs,
  isTerminal,
  ServiceProcess,
  stepRuns,
  storedJob,
  tempDir,
  TestState,
  waitFor,
} from './helpers.js';

let redisDir: string;
let state: TestState;
let port: number;
let redis: ChildProcess | null = null;
let service: ServiceProcess | null = null;

async function startRedis(): Promise<void> {
  redis = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', redisDir, '--appendonly', 'yes', '--save', ''],
    {
      stdio: 'ignore',
    },
  );
  await waitFor('redis to answer', () => redis !== null, 1000);
  const deadline = Date.now() + 10_000;
  while (!(await redisAnswers(`redis://127.0.0.1:${port}`, 300))) {
    if (Date.now() > deadline) throw new Error('redis-server did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stopRedis(): Promise<void> {
  if (!redis || redis.exitCode !== null) return;
  const exited = new Promise((r) => redis!.once('exit', r));
  // SHUTDOWN flushes the append-only file, as a clean restart of a production Redis would.
  execFileSync('redis-cli', ['-p', String(port), 'shutdown']);
  await exited;
}

beforeAll(async () => {
  redisDir = tempDir('redis');
  state = await TestState.create('redis-restart');
  port = await freePort();
  await startRedis();
}, 30_000);

afterAll(async () => {
  await service?.stop();
  await stopRedis().catch(() => redis?.kill('SIGKILL'));
  fs.rmSync(redisDir, { recursive: true, force: true });
  await state?.drop();
});

test('the service reconnects after Redis restarts and every job finishes', { timeout: 180_000 }, async () => {
  const redisUrl = `redis://127.0.0.1:${port}`;
  const env = {
    ...state.env,
    REDIS_URL: redisUrl,
    QUEUE_PREFIX: 'mo',
    INPUT_ROOTS: CORPUS,
    LOCK_DURATION_MS: '5000',
    STALLED_INTERVAL_MS: '2500',
    SWEEP_INTERVAL_MS: '2000',
    PORT: String(await freePort()),
  };
  service = await new ServiceProcess([], env).ready();
  const producer = createProducer({ redisUrl, prefix: 'mo' });
  const files = [
    'pdf/tracemonkey-paper.pdf',
    'pdf/tam-review.pdf',
    'video/speech-testsrc.mp4',
    'image/flowers.jpeg',
    'image/g31d.tif',
    'video/with-subtitles.mkv',
    'audio/voice-memo.wav',
    'pdf/form-f1040.pdf',
    'image/camera-gps-dscn0010.jpg',
    'video/silent.mp4',
  ];
  // A job that waits for a person: its decision comes while Redis is down.
  const review = 'redis-restart-review';
  const instructions = { review: { when: 'always' as const } };
  await producer.enqueueJob({ jobId: review, file: { path: path.join(CORPUS, 'image/320x240.jpg') }, instructions });
  const ids = files.map((_, i) => `redis-restart-${i}`);
  for (const [i, f] of files.entries())
    await producer.enqueueJob({ jobId: ids[i], file: { path: path.join(CORPUS, f) } });
  await producer.close();

  await waitFor('the review to wait', async () => (await storedJob(state, review))?.status === 'awaiting_review');
  await waitFor('work to start', async () => (await stepRuns(state, ids)).length > 3);
  const finishedBefore = (await Promise.all(ids.map((id) => storedJob(state, id)))).filter(isTerminal).length;
  await stopRedis();
  // While Redis is down an upload is refused whole: 503 with Retry-After, and no job record left `queued` forever.
  const during = await fetch(`http://127.0.0.1:${env.PORT}/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ file: { path: path.join(CORPUS, 'image/320x240.jpg'), name: 'during-outage.jpg' } }),
  });
  expect(during.status).toBe(503);
  expect(during.headers.get('retry-after')).toBe('5');
  expect(((await during.json()) as { error: { code: string } }).error.code).toBe('UNAVAILABLE');
  const { jobs } = await (await state.store()).list({}, 100);
  expect(jobs.map((j) => j.file.name)).not.toContain('during-outage.jpg');
  // A decision is stored even though the job cannot be queued now: it is acted on once Redis is back.
  const decided = await fetch(`http://127.0.0.1:${env.PORT}/jobs/${review}/review`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ decision: 'approve' }),
  });
  expect(decided.status).toBe(202);
  expect((await storedJob(state, review))?.review?.decision).toBe('approve');
  await new Promise((r) => setTimeout(r, 1000));
  await startRedis();

  const docs = await finishedJobs(state, [...ids, review], 150_000);
  expect(finishedBefore).toBeLessThan(ids.length);
  for (const doc of docs)
    expect(doc?.status, `${JSON.stringify(doc?.error)} ${service.log.slice(-1500)}`).toMatch(/^completed/);
  expect(service.child.exitCode).toBeNull();
});
