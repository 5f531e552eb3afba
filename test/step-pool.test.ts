/**
 * The step thread pool: a step's time limit counts the step, never the boot of the thread that runs it. A fresh
 * thread can take seconds to boot on a loaded machine (tsx compiling, media libraries loading); the fixture thread
 * here boots in twelve seconds, longer than the steps' limits (8 s) plus the pool's grace (2 s).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/lib/log.js';
import type { StepInput } from '../src/nodes/index.js';
import { StepPool } from '../src/queue/step-pool.js';
import { poolFor } from '../src/queue/task-worker.js';
import { openJobStore } from '../src/store/index.js';
import { CORPUS, makeLongVideo, tempDir } from './helpers.js';

const SLOW_ENTRY = new URL('./fixtures/slow-step-thread.mjs', import.meta.url);
let dataDir: string;
let longVideo: string;

beforeAll(() => {
  dataDir = tempDir('step-pool');
  longVideo = path.join(dataDir, 'long.mp4');
  makeLongVideo(longVideo, 5);
}, 120_000);

afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

function input(jobId: string, file: string): StepInput {
  return { jobId, file: { path: file }, user: null, fileInfo: null, fileType: null, results: {} };
}

async function runRecords(jobId: string): Promise<{ step: string; attempt: number; status: string }[]> {
  const store = await openJobStore(loadConfig({ DATA_DIR: dataDir }));
  try {
    return (await store.runs(jobId)).map(({ step, attempt, status }) => ({ step, attempt, status }));
  } finally {
    await store.close();
  }
}

test(
  'a slow-booting thread, and the replacement of a timed-out one, get the whole time limit',
  {
    timeout: 300_000,
  },
  async () => {
    const config = loadConfig({ DATA_DIR: dataDir, LOG_LEVEL: 'warn' });
    const pool = new StepPool(1, config, createLogger('warn', 'test'), { entry: SLOW_ENTRY });
    try {
      const image = path.join(CORPUS, 'image/320x240.jpg');
      // 1. The first thread boots for 12 s; validate's 8 s limit starts when the step does.
      const first = await pool.run('validate', input('boot', image), { attempt: 1, timeoutMs: 8000 });
      expect(first.outcome.status).toBe('succeeded');

      // 2. A step that overruns its limit is stopped and its thread replaced...
      const video = { ...input('timeout', longVideo), results: { metadata: { hasAudio: true, durationSec: 300 } } };
      const stopped = pool.run('extractAudio', video as StepInput, { attempt: 1, timeoutMs: 300 });
      expect((await stopped).outcome).toMatchObject({ status: 'failed', code: 'TIMEOUT' });
      // ...and the next attempt waits for the new thread to boot instead of being charged for it.
      const again = await pool.run('validate', input('timeout', image), { attempt: 2, timeoutMs: 8000 });
      expect(again.outcome.status).toBe('succeeded');

      // Every attempt the pool ran has its run record: none was killed before it began.
      // (A success stays `running` here: the task worker records it once BullMQ holds the result.)
      expect(await runRecords('boot')).toEqual([{ step: 'validate', attempt: 1, status: 'running' }]);
      expect(await runRecords('timeout')).toEqual([
        { step: 'extractAudio', attempt: 1, status: 'failed' },
        { step: 'validate', attempt: 2, status: 'running' },
      ]);
    } finally {
      await pool.destroy();
    }
  },
);

test('idle threads retire after their idle time, down to the ones the pool keeps', { timeout: 300_000 }, async () => {
  const config = loadConfig({ DATA_DIR: dataDir, LOG_LEVEL: 'warn' });
  const pool = new StepPool(2, config, createLogger('warn', 'test'), { idleMs: 1500, keep: 1 });
  try {
    const image = path.join(CORPUS, 'image/320x240.jpg');
    const run = (jobId: string) => pool.run('validate', input(jobId, image), { attempt: 1, timeoutMs: 60_000 });
    // Two at once: the pool grows to two threads.
    await Promise.all([run('idle-1'), run('idle-2')]);
    expect(pool.liveThreads).toBe(2);
    await expect.poll(() => pool.liveThreads, { timeout: 30_000, interval: 200 }).toBe(1);
    expect(pool.idleThreads).toBe(1);
    // The kept thread still works, and is kept.
    expect((await run('idle-3')).outcome.status).toBe('succeeded');
    // A clock of the pool's own kind: a thread of another pool with the same idle time, idle since after the kept one,
    // has retired; so the kept thread's idle time has passed too, and it was kept.
    const clock = new StepPool(1, config, createLogger('warn', 'test'), { idleMs: 1500, keep: 0 });
    try {
      const ran = await clock.run('validate', input('idle-clock', image), { attempt: 1, timeoutMs: 60_000 });
      expect(ran.outcome.status).toBe('succeeded');
      await expect.poll(() => clock.liveThreads, { timeout: 30_000, interval: 200 }).toBe(0);
    } finally {
      await clock.destroy();
    }
    expect(pool.liveThreads).toBe(1);
    expect(pool.idleThreads).toBe(1);
  } finally {
    await pool.destroy();
  }
});

test('a draining pool refuses waiting requests and boots no thread', { timeout: 300_000 }, async () => {
  const config = loadConfig({ DATA_DIR: dataDir, LOG_LEVEL: 'warn' });
  const pool = new StepPool(1, config, createLogger('warn', 'test'));
  try {
    const video = { ...input('drain-1', longVideo), results: { metadata: { hasAudio: true, durationSec: 300 } } };
    const running = pool.run('extractAudio', video as StepInput, { attempt: 1, timeoutMs: 60_000 });
    await expect.poll(async () => (await runRecords('drain-1')).length, { timeout: 60_000, interval: 100 }).toBe(1);
    const image = path.join(CORPUS, 'image/320x240.jpg');
    const waiting = pool.run('validate', input('drain-2', image), { attempt: 1, timeoutMs: 60_000 });
    // The waiting request is refused at once; the running step goes on to its end.
    pool.drain();
    await expect(waiting).rejects.toThrow(/closing/);
    expect((await running).outcome.status).toBe('succeeded');
    expect(pool.liveThreads).toBe(0);
    await expect(pool.run('validate', input('drain-3', image), { attempt: 1, timeoutMs: 60_000 })).rejects.toThrow(
      /closing/,
    );
    expect(await runRecords('drain-2')).toEqual([]);
  } finally {
    await pool.destroy();
  }
});

test('the offline detector runs on one thread of its own; the other steps share the media threads', () => {
  const offline = loadConfig({ DATA_DIR: dataDir });
  expect(poolFor(offline, 'ai', 'analyzeImage')).toBe('vision');
  expect(poolFor(offline, 'ai', 'transcribe')).toBe('shared');
  expect(poolFor(offline, 'ai', 'summarize')).toBe('shared');
  expect(poolFor(offline, 'image', 'generateThumbnails')).toBe('shared');
  expect(poolFor(offline, 'document', 'extractText')).toBe('shared');
  expect(poolFor(offline, 'light', 'validate')).toBe('light');

  // A local detector beside a remote chat model: the detector still has its one thread, the rest wait on HTTP.
  const mixed = loadConfig({
    DATA_DIR: dataDir,
    OPENAI_BASE_URL: 'http://127.0.0.1:9/v1',
    AI_PROVIDERS: 'vision=local,speech=local,text=openai',
  });
  expect(poolFor(mixed, 'ai', 'analyzeImage')).toBe('vision');
  expect(poolFor(mixed, 'ai', 'summarize')).toBe('ai');

  // A remote vision model: no detector thread at all.
  const remote = loadConfig({ DATA_DIR: dataDir, OPENAI_BASE_URL: 'http://127.0.0.1:9/v1' });
  expect(poolFor(remote, 'ai', 'analyzeImage')).toBe('ai');
});

test('warm() readies a thread that has loaded what its steps load on first use', { timeout: 120_000 }, async () => {
  // The offline detector and pdf.js: analyzeImage, extractText and renderPreview load them on their first call.
  // validate loads nothing of its own, and with vision off analyzeImage has nothing to load.
  const local = loadConfig({ DATA_DIR: dataDir, LOG_LEVEL: 'warn', AI_PROVIDERS: 'vision=local' });
  const off = loadConfig({ DATA_DIR: dataDir, LOG_LEVEL: 'warn', AI_PROVIDERS: 'vision=off' });
  const pools = [
    new StepPool(2, local, createLogger('warn', 'test')),
    new StepPool(1, off, createLogger('warn', 'test')),
  ];
  try {
    await pools[0]!.warm(['validate', 'analyzeImage', 'extractText', 'renderPreview']);
    expect(pools[0]!.idleThreads).toBe(1);
    expect(pools[0]!.liveThreads).toBe(1);
    expect([...pools[0]!.warmedSteps].sort()).toEqual(['analyzeImage', 'extractText', 'renderPreview']);

    await pools[1]!.warm(['analyzeImage']);
    expect(pools[1]!.idleThreads).toBe(1);
    expect([...pools[1]!.warmedSteps]).toEqual([]);

    // The warmed thread runs steps as any other.
    const pdf = path.join(CORPUS, 'pdf/three-pages.pdf');
    const { outcome } = await pools[0]!.run('extractText', input('warm', pdf), { attempt: 1, timeoutMs: 60_000 });
    expect(outcome.status).toBe('succeeded');
  } finally {
    await Promise.all(pools.map((p) => p.destroy()));
  }
});
