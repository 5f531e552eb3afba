/**
 * The command line in another terminal, which does not share the service's QUEUE_PREFIX, DATA_DIR or machine: it
 * talks to the service's HTTP API (--url, MEDIA_ORCHESTRATOR_URL, or the local service when nothing points it
 * elsewhere). Talking to Redis directly with a prefix nobody consumes, `submit --wait` says so at once.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { JobDocument } from '../src/lib/types.js';
import { freePort } from '../src/lib/net.js';
import {
  BIN,
  CORPUS,
  dropPrefix,
  runCli,
  ServiceProcess,
  sha256Of,
  tempDir,
  TEST_REDIS_URL,
  TestState,
  uniquePrefix,
  waitFor,
  type CliResult,
} from './helpers.js';

const prefix = uniquePrefix('cli-remote');
const TOKEN = 'remote-test-token';
let state: TestState;
let service: ServiceProcess;
let base: string;
let port: number;
/** What the other terminal has: none of the service's state, a prefix and a data folder of its own. */
let elsewhere: Record<string, string>;
let otherDir: string;

beforeAll(async () => {
  state = await TestState.create('cli-remote');
  otherDir = tempDir('cli-remote-other');
  port = await freePort();
  base = `http://127.0.0.1:${port}`;
  service = await new ServiceProcess([], {
    ...state.env,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: prefix,
    PORT: String(port),
    API_TOKEN: TOKEN,
    DISABLED_STEPS: 'analyzeImage',
    // Only a job that asks for a review waits for one; here nobody answers it.
    REVIEW_TIMEOUT: '1000:reject',
  }).ready();
  elsewhere = {
    DATA_DIR: otherDir,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: `${prefix}-nobody`,
    API_TOKEN: TOKEN,
  };
}, 90_000);

afterAll(async () => {
  await service?.stop();
  await dropPrefix(TEST_REDIS_URL, prefix);
  await dropPrefix(TEST_REDIS_URL, `${prefix}-nobody`);
  await state?.drop();
  fs.rmSync(otherDir, { recursive: true, force: true });
});

test('submit --wait, status and cancel through --url work from a terminal with another prefix and data folder', async () => {
  const photo = path.join(CORPUS, 'image/320x240.jpg');
  const submitted = await runCli(['submit', '--wait', '--json', '--url', base, photo], elsewhere, 120_000);
  expect(submitted.code, submitted.stderr).toBe(0);
  const doc = JSON.parse(submitted.stdout) as JobDocument;
  expect(doc).toMatchObject({ status: 'completed', fileType: 'image', file: { name: '320x240.jpg' } });
  expect(doc.file.sha256).toBe(sha256Of(photo));
  // It is the service's job, in the service's store: uploaded, not read from this terminal's path.
  expect((await (await state.store()).get(doc.id))?.status).toBe('completed');

  const status = await runCli(['status', '--json', doc.id], { ...elsewhere, MEDIA_ORCHESTRATOR_URL: base });
  expect(status.code, status.stderr).toBe(0);
  expect(JSON.parse(status.stdout)).toMatchObject({ id: doc.id, status: 'completed' });

  const missing = await runCli(['status', 'no-such-job', '--url', base], elsewhere);
  expect(missing).toMatchObject({ code: 1, stdout: '' });
  expect(missing.stderr).toContain('no job no-such-job');

  // The job has ended: nothing to cancel, said on stderr.
  const cancel = await runCli(['cancel', doc.id, '--url', base], elsewhere);
  expect(cancel.code).toBe(1);
  expect(cancel.stderr).toMatch(/409: CONFLICT/);

  // The write routes need the token: without it, a clear refusal.
  const refused = await runCli(['submit', '--url', base, photo], { ...elsewhere, API_TOKEN: '' });
  expect(refused.code).toBe(1);
  expect(refused.stderr).toMatch(/answered 401/);
});

test('through --url, a job rejected by its review timeout is a job that did not succeed', async () => {
  const photo = path.join(CORPUS, 'image/320x240.jpg');
  const instructions = JSON.stringify({ review: { when: 'always' } });
  const submitted = await runCli(
    ['submit', '--wait', '--json', '--url', base, '--instructions', instructions, photo],
    elsewhere,
    120_000,
  );
  // The wait ends where a person must act (exit 3), or, if REVIEW_TIMEOUT (1 s here) decided first, at the rejection.
  const doc = JSON.parse(submitted.stdout) as JobDocument;
  if (doc.status === 'awaiting_review') expect(submitted.code, submitted.stderr).toBe(3);
  else expect(submitted.code, submitted.stderr).toBe(2);
  const rejected = await waitFor(`job ${doc.id} rejected by REVIEW_TIMEOUT`, async () => {
    const now = await (await state.store()).get(doc.id);
    return now?.status === 'rejected' ? now : null;
  });
  expect(rejected.review).toMatchObject({ decision: 'reject' });
  const status = await runCli(['status', '--json', '--url', base, doc.id], elsewhere);
  expect(status.code, status.stderr).toBe(2);
  expect(JSON.parse(status.stdout)).toMatchObject({ status: 'rejected' });
});

/** The CLI with exactly `env` (and PATH): what a fresh terminal has. */
function bare(args: string[], env: Record<string, string>): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      BIN,
      args,
      {
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', LOG_LEVEL: 'warn', ...env },
        timeout: 60_000,
      },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

test('a terminal that sets none of the state variables finds the service answering on PORT', async () => {
  const created = await runCli(
    ['submit', '--json', '--url', base, path.join(CORPUS, 'pdf/three-pages.pdf')],
    elsewhere,
  );
  expect(created.code, created.stderr).toBe(0);
  const { id } = JSON.parse(created.stdout) as JobDocument;
  const found = await bare(['status', '--json', id], { PORT: String(port) });
  expect(found.code, found.stderr).toBe(0);
  expect(JSON.parse(found.stdout)).toMatchObject({ id });
  // MEDIA_ORCHESTRATOR_URL=none: this terminal's own store and queue, where this job is not.
  const direct = await bare(['status', id], { PORT: String(port), MEDIA_ORCHESTRATOR_URL: 'none', ...elsewhere });
  expect(direct.code).toBe(1);
  expect(direct.stderr).toContain(`no job ${id}`);
});

test('submit --wait on a prefix no orchestrator consumes says so at once instead of waiting', async () => {
  const res = await runCli(['submit', '--wait', path.join(CORPUS, 'image/320x240.jpg')], elsewhere, 60_000);
  expect(res.code).toBe(1);
  expect(res.stderr).toContain(`no orchestrator is consuming QUEUE_PREFIX=${prefix}-nobody`);
  // (Without the check it waited for ever: runCli's hang guard would have killed it, with no such message.)
  // Nothing was staged or queued for it.
  expect(fs.existsSync(path.join(otherDir, 'uploads')) ? fs.readdirSync(path.join(otherDir, 'uploads')) : []).toEqual(
    [],
  );
});
