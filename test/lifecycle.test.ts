/**
 * Timeouts, cancellation and graceful shutdown of the service, with real ffmpeg work on a long video.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { freePort } from '../src/lib/net.js';
import { Redis } from 'ioredis';
import { requestCancel } from '../src/queue/cancel.js';
import { createProducer } from '../src/queue/producer.js';
import {
  CORPUS,
  dropPrefix,
  finishedJobs,
  ffmpegWorkingFor,
  isTerminal,
  makeLongVideo,
  runCli,
  ServiceProcess,
  stepRuns,
  storedJob,
  tempDir,
  TestState,
  TEST_REDIS_URL,
  uniquePrefix,
  waitFor,
} from './helpers.js';

let media: string;
let longVideo: string;
const services: ServiceProcess[] = [];
const prefixes: string[] = [];
const states: TestState[] = [];

async function setup(name: string, extra: Record<string, string> = {}) {
  const prefix = uniquePrefix(name);
  const state = await TestState.create(name);
  prefixes.push(prefix);
  states.push(state);
  const env = {
    ...state.env,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: prefix,
    INPUT_ROOTS: `${CORPUS},${media}`,
    ...extra,
  };
  const start = (): ServiceProcess => {
    const s = new ServiceProcess([], env);
    services.push(s);
    return s;
  };
  return { prefix, env, state, start };
}

/** A service with its API on a free port, and a POST helper (JSON body when one is given). */
async function withApi(name: string, extra: Record<string, string> = {}) {
  const port = await freePort();
  const s = await setup(name, { ...extra, PORT: String(port) });
  await s.start().ready();
  const base = `http://127.0.0.1:${port}`;
  const post = (p: string, body?: unknown): Promise<Response> =>
    fetch(`${base}${p}`, {
      method: 'POST',
      ...(body ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}),
    });
  /** Submits a file by path; its job id. */
  const submit = async (file: string): Promise<string> =>
    ((await (await post('/jobs', { file: { path: file } })).json()) as { id: string }).id;
  return { ...s, base, post, submit };
}

beforeAll(() => {
  media = tempDir('lifecycle-media');
  longVideo = path.join(media, 'long-lecture.mp4');
  makeLongVideo(longVideo, 20);
  // A hang guard: encoding 20 minutes takes seconds alone, minutes beside a second copy of the suite.
}, 600_000);

afterAll(async () => {
  await Promise.all(services.map((s) => s.stop()));
  for (const p of prefixes) await dropPrefix(TEST_REDIS_URL, p);
  for (const state of states) await state.drop();
  fs.rmSync(media, { recursive: true, force: true });
});

describe('a step that does not finish in time', () => {
  test(
    'is stopped at its timeout, not retried (the policy: same bytes, same time), and ends TIMEOUT',
    {
      timeout: 300_000,
    },
    async () => {
      const s = await setup('timeout', { STEP_TIMEOUTS: 'extractAudio=500', RETRY_BACKOFF_MS: '100' });
      const service = await s.start().ready();
      const producer = createProducer({ redisUrl: TEST_REDIS_URL, prefix: s.prefix });
      await producer.enqueueJob({ jobId: 'slow-audio', file: { path: longVideo } });
      await producer.close();
      const doc = (await finishedJobs(s.state, ['slow-audio']))[0]!;
      expect(doc.status, service.log.slice(-2000)).toBe('completed_with_errors');
      expect(doc.steps.extractAudio).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'TIMEOUT' } });
      expect(doc.steps.transcribe).toMatchObject({ status: 'skipped', reason: 'extractAudio failed' });
      expect(doc.steps.posterFrame?.status).toBe('succeeded');
      const attempts = (await stepRuns(s.state, 'slow-audio')).filter((r) => r.step === 'extractAudio');
      expect(attempts).toHaveLength(1);
      // The work really stopped: no ffmpeg is left encoding the file.
      expect(ffmpegWorkingFor(s.state, 'slow-audio')).toBe(false);
    },
  );
});

describe('cancellation', () => {
  test('a running job is stopped and ends cancelled', { timeout: 300_000 }, async () => {
    const s = await setup('cancel');
    await s.start().ready();
    const producer = createProducer({ redisUrl: TEST_REDIS_URL, prefix: s.prefix });
    await producer.enqueueJob({ jobId: 'to-cancel', file: { path: longVideo } });
    // A second job waits behind it in no queue at all: it is cancelled before it ever starts.
    await waitFor('extractAudio to run', async () =>
      (await stepRuns(s.state, 'to-cancel')).some((r) => r.step === 'extractAudio' && r.status === 'running'),
    );
    // Its ffmpeg is at work (so that its absence later says something).
    await waitFor('ffmpeg to run', () => ffmpegWorkingFor(s.state, 'to-cancel'), 10_000);
    // The producer-side function the CLI and the API call, so the cancel lands while extractAudio still runs.
    const redis = new Redis(TEST_REDIS_URL);
    try {
      const store = await s.state.store();
      const result = await requestCancel({ store, queue: producer.queue, redis, prefix: s.prefix }, 'to-cancel');
      expect(result.found).toBe(true);
    } finally {
      redis.disconnect();
    }
    const doc = (await finishedJobs(s.state, ['to-cancel']))[0]!;
    expect(doc.status).toBe('cancelled');
    expect(doc.error?.code).toBe('CANCELLED');
    expect(doc.steps.extractAudio?.status).toBe('failed');
    await waitFor('ffmpeg to stop', () => !ffmpegWorkingFor(s.state, 'to-cancel'), 10_000);
    // Cancelling again, or a finished job, says so.
    const again = await runCli(['cancel', 'to-cancel'], s.env);
    expect(again).toMatchObject({ code: 1, stdout: '' });
    expect(again.stderr).toMatch(/already ended: cancelled/);
    const unknown = await runCli(['cancel', 'no-such-job'], s.env);
    expect(unknown).toMatchObject({ code: 1, stdout: '' });
    expect(unknown.stderr).toMatch(/no job no-such-job/);
    await producer.close();
  });

  test('a job not yet started is removed from the queue and ends cancelled', { timeout: 300_000 }, async () => {
    const s = await setup('cancel-queued');
    // No service running: the job waits in the queue.
    const producer = createProducer({ redisUrl: TEST_REDIS_URL, prefix: s.prefix });
    await producer.enqueueJob({ jobId: 'never-started', file: { path: path.join(CORPUS, 'image/320x240.jpg') } });
    expect((await runCli(['status', 'never-started', '--json'], s.env)).stdout).toContain('"status": "queued"');
    const res = await runCli(['cancel', 'never-started'], s.env);
    expect(res.stdout, `exit ${res.code}: ${res.stderr}`).toMatch(/cancelled before it started/);
    expect(await producer.queue.getJob('never-started')).toBeUndefined();
    const status = await runCli(['status', 'never-started', '--json'], s.env);
    expect(status.code).toBe(2);
    expect(JSON.parse(status.stdout)).toMatchObject({ status: 'cancelled', error: { code: 'CANCELLED' } });
    await producer.close();
  });
});

describe('graceful shutdown', () => {
  test(
    'SIGTERM with jobs in flight exits within 30 s; they all complete after a restart',
    // The 30 s is the claim; the rest is a hang guard for eight jobs of real work on a loaded machine.
    { timeout: 900_000 },
    async () => {
      const s = await setup('sigterm');
      const first = await s.start().ready();
      const producer = createProducer({ redisUrl: TEST_REDIS_URL, prefix: s.prefix });
      const files = [
        longVideo,
        'pdf/tracemonkey-paper.pdf',
        'pdf/tam-review.pdf',
        'video/speech-testsrc.mp4',
        'image/flowers.jpeg',
        'image/g31d.tif',
        'video/with-subtitles.mkv',
        'audio/voice-memo.wav',
      ].map((f) => (path.isAbsolute(f) ? f : path.join(CORPUS, f)));
      const ids = files.map((_, i) => `drain-${i}`);
      for (const [i, file] of files.entries()) await producer.enqueueJob({ jobId: ids[i], file: { path: file } });
      await producer.close();
      // The long video's audio is being extracted when the signal comes: its ffmpeg gets the signal too.
      await waitFor('work to be under way', async () =>
        (await stepRuns(s.state, 'drain-0')).some((r) => r.step === 'extractAudio'),
      );

      const unfinished = (await Promise.all(ids.map((id) => storedJob(s.state, id)))).filter((d) => !isTerminal(d));
      expect(unfinished.length).toBeGreaterThan(0);
      const t0 = Date.now();
      first.kill('SIGTERM');
      const exit = await first.exited;
      const took = Date.now() - t0;
      expect(took, first.log.slice(-2000)).toBeLessThan(30_000);
      expect(exit.code, first.log.slice(-3000)).toBe(0);
      // A stopping service starts no new work: a job or task fetched as it began to close goes back untouched. (The
      // signal can reach a busy main thread late, hence the margin.)
      const startedLate = (await stepRuns(s.state, ids)).filter(
        (r) => r.pid === first.child.pid && Date.parse(r.startedAt) > t0 + 3000,
      );
      expect(startedLate).toEqual([]);

      const second = await s.start().ready();
      const docs = await finishedJobs(s.state, ids, 600_000);
      for (const doc of docs)
        expect(doc?.status, `${JSON.stringify(doc)} ${second.log.slice(-1500)}`).toMatch(/^completed/);
      // The interrupted extraction went back to the queue: the shutdown did not cost it an attempt.
      expect(docs[0]?.steps.extractAudio?.attempts, JSON.stringify(await stepRuns(s.state, 'drain-0'))).toBe(1);
    },
  );
});

describe('priority', () => {
  test('a job with a higher priority (lower number) runs before lower ones', { timeout: 300_000 }, async () => {
    const s = await setup('priority', { JOB_CONCURRENCY: '1' });
    // Queue everything while no orchestrator runs, then start one that takes a job at a time.
    const producer = createProducer({ redisUrl: TEST_REDIS_URL, prefix: s.prefix });
    const file = path.join(CORPUS, 'image/320x240.jpg');
    for (const [jobId, priority] of [
      ['low-1', 50],
      ['low-2', 50],
      ['urgent', 1],
      ['middle', 10],
    ] as const) {
      await producer.enqueueJob({ jobId, priority, file: { path: file } });
    }
    await producer.close();
    await s.start().ready();
    await finishedJobs(s.state, ['low-1', 'low-2', 'urgent', 'middle']);
    const order = (await stepRuns(s.state, ['low-1', 'low-2', 'urgent', 'middle']))
      .filter((r) => r.step === 'validate')
      .map((r) => r.jobId);
    expect(order).toEqual(['urgent', 'middle', 'low-1', 'low-2']);
  });
});

describe('retry', () => {
  test('only the failed steps run again, as new tasks', { timeout: 300_000 }, async () => {
    const s = await withApi('retry', { STEP_TIMEOUTS: 'extractAudio=500', RETRY_BACKOFF_MS: '100' });
    const id = await s.submit(longVideo);
    const first = (await finishedJobs(s.state, [id]))[0]!;
    expect(first.status).toBe('completed_with_errors');
    const runsBefore = await stepRuns(s.state, id);
    expect((await s.post(`/jobs/${id}/retry`)).status).toBe(202);
    const second = await waitFor('the retry', async () => {
      const d = await storedJob(s.state, id);
      return isTerminal(d) && d.updatedAt !== first.updatedAt && d;
    });
    expect(second.status).toBe('completed_with_errors');
    const added = (await stepRuns(s.state, id)).slice(runsBefore.length);
    // validate, extractMetadata and posterFrame kept their results; only extractAudio ran again (once: its TIMEOUT
    // is not retried).
    expect(added.map((r) => r.step)).toEqual(['extractAudio']);
    expect(second.steps.posterFrame).toEqual(first.steps.posterFrame);
    expect(second.results.thumbnails).toEqual(first.results.thumbnails);
  });
});

describe('retry after a cancellation', () => {
  test(
    'a cancelled job runs again when retried, and its retry can be cancelled in turn',
    { timeout: 300_000 },
    async () => {
      const s = await withApi('retry-cancelled');
      const { post } = s;
      const id = await s.submit(longVideo);
      const audioRuns = async () => (await stepRuns(s.state, id)).filter((r) => r.step === 'extractAudio');
      await waitFor('extractAudio to run', async () => (await audioRuns()).some((r) => r.status === 'running'));
      await waitFor('ffmpeg to run', () => ffmpegWorkingFor(s.state, id), 10_000);
      expect((await post(`/jobs/${id}/cancel`)).status).toBe(202);
      const cancelled = (await finishedJobs(s.state, [id]))[0]!;
      expect(cancelled.status).toBe('cancelled');
      // What validate learnt before the cancellation stays with the job (and is where its retry starts from).
      expect(cancelled.fileType).toBe('video');
      expect(cancelled.file.sha256).toMatch(/^[0-9a-f]{64}$/);
      await waitFor('ffmpeg to stop', () => !ffmpegWorkingFor(s.state, id), 10_000);

      // The retry really runs: the job's cancel marker is gone, so it does not end `cancelled` at once.
      expect((await post(`/jobs/${id}/retry`)).status).toBe(202);
      await waitFor('the retry to extract audio', async () =>
        (await audioRuns()).some((r, i) => i > 0 && r.status === 'running'),
      );
      await waitFor("the retry's ffmpeg to run", () => ffmpegWorkingFor(s.state, id), 10_000);
      expect((await storedJob(s.state, id))?.status).toBe('running');

      // Cancelling the retry stops its running step (a task of generation 1), not only the job's record.
      expect((await post(`/jobs/${id}/cancel`)).status).toBe(202);
      const again = await waitFor('the retry to end', async () => {
        const d = await storedJob(s.state, id);
        return isTerminal(d) && d.updatedAt !== cancelled.updatedAt && d;
      });
      expect(again.status).toBe('cancelled');
      await waitFor('ffmpeg to stop', () => !ffmpegWorkingFor(s.state, id), 10_000);
      await waitFor(
        "the retry's extraction to be recorded as stopped",
        async () => (await audioRuns()).at(-1)?.status === 'failed',
        10_000,
      );
    },
  );

  test(
    'a failure the file decides is not retried: 409 with the reason, and the document says so',
    { timeout: 300_000 },
    async () => {
      const s = await withApi('retry-refused');
      const notes = path.join(media, 'notes.txt');
      fs.writeFileSync(notes, 'plain text, not media\n');
      const id = await s.submit(notes);
      const doc = (await finishedJobs(s.state, [id]))[0]!;
      expect(doc.error?.code).toBe('UNSUPPORTED_TYPE');
      const res = await s.post(`/jobs/${id}/retry`);
      expect(res.status).toBe(409);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.message).toMatch(/UNSUPPORTED_TYPE: the same file would fail the same way/);
      const shown = (await (await fetch(`${s.base}/jobs/${id}`)).json()) as { retry: unknown };
      expect(shown.retry).toEqual({ allowed: false, reason: body.error.message });
      // Nothing was re-run.
      expect((await stepRuns(s.state, id)).filter((r) => r.step === 'validate')).toHaveLength(1);
    },
  );
});
