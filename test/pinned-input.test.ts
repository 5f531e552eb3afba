/**
 * The file a job checked is the file every step reads. The attack: a producer's file is accepted at intake, then,
 * before the steps run, its path is replaced by a symlink to a file outside every input root. The orchestrator
 * pinned the accepted inode into the job's own folder at intake, so the steps still read the original.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createProducer } from '../src/queue/producer.js';
import {
  CORPUS,
  dropPrefix,
  finishedJobs,
  ServiceProcess,
  stepRuns,
  storedJob,
  tempDir,
  TEST_REDIS_URL,
  TestState,
  uniquePrefix,
  waitFor,
} from './helpers.js';

const prefix = uniquePrefix('pinned');
let state: TestState;
let inputRoot: string;
let outside: string;
const services: ServiceProcess[] = [];

beforeAll(async () => {
  state = await TestState.create('pinned');
  inputRoot = tempDir('pinned-in');
  outside = tempDir('pinned-secret');
});

afterAll(async () => {
  for (const s of services) await s.stop();
  await dropPrefix(TEST_REDIS_URL, prefix);
  await state?.drop();
  for (const d of [inputRoot, outside]) fs.rmSync(d, { recursive: true, force: true });
});

const sha256 = (file: string): string => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

test(
  'replacing an accepted file by a symlink after intake changes nothing the job reads',
  { timeout: 300_000 },
  async () => {
    const accepted = path.join(inputRoot, 'photo.jpg');
    fs.copyFileSync(path.join(CORPUS, 'image/320x240.jpg'), accepted);
    const secret = path.join(outside, 'secret.jpg');
    fs.copyFileSync(path.join(CORPUS, 'image/camera-canon-ixus.jpg'), secret);
    const original = sha256(accepted);
    const env = { ...state.env, REDIS_URL: TEST_REDIS_URL, QUEUE_PREFIX: prefix, INPUT_ROOTS: inputRoot };

    // Intake only: no worker runs yet, so validate waits in its queue.
    const orchestrator = new ServiceProcess(['--role', 'orchestrator'], env);
    services.push(orchestrator);
    await orchestrator.ready();
    const producer = createProducer({ redisUrl: TEST_REDIS_URL, prefix });
    await producer.enqueueJob({ jobId: 'swapped', file: { path: accepted } });
    await producer.close();
    await waitFor('intake', async () => (await storedJob(state, 'swapped'))?.status === 'running');
    expect(await stepRuns(state, 'swapped')).toEqual([]);

    // The swap, between intake and the steps.
    fs.rmSync(accepted);
    fs.symlinkSync(secret, accepted);

    const worker = new ServiceProcess(['--role', 'worker'], env);
    services.push(worker);
    await worker.ready();
    const [doc] = await finishedJobs(state, ['swapped']);
    expect(doc!.status).toBe('completed');
    // Every step read the accepted bytes, never the secret.
    expect(doc!.file.sha256).toBe(original);
    expect(doc!.results.metadata).toMatchObject({ width: 320, height: 240 });
    expect(doc!.file.name).toBe('photo.jpg');
  },
);
