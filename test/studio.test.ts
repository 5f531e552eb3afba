/**
 * LangGraph Studio: `npm run studio -- --port P` starts the local LangGraph API server with our graph; the LangGraph
 * SDK runs a corpus image through it and gets thumbnails in the final state.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Client } from '@langchain/langgraph-sdk';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';
import { freePort } from '../src/lib/net.js';
import type { Results, StepRecords } from '../src/lib/types.js';
import { openJobStore } from '../src/store/index.js';
import { CORPUS, ROOT, tempDir, userEnv } from './helpers.js';

let server: ChildProcess;
let url: string;
let dataDir: string;
let output = '';

beforeAll(async () => {
  dataDir = tempDir('studio');
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  server = spawn('npm', ['run', 'studio', '--', '--port', String(port), '--host', '127.0.0.1'], {
    cwd: ROOT,
    env: { ...userEnv(), DATA_DIR: dataDir, LOG_LEVEL: 'warn', LANGSMITH_TRACING: 'false' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, so the whole tree (npm, the CLI, its workers) is stopped after
  });
  server.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  server.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const deadline = Date.now() + 90_000;
  for (;;) {
    const ok = await fetch(`${url}/ok`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline || server.exitCode !== null) throw new Error(`studio server did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}, 120_000);

afterAll(() => {
  if (server.pid) {
    try {
      process.kill(-server.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  fs.rmSync(dataDir, { recursive: true, force: true });
});

test('the LangGraph API runs the graph on a corpus image', { timeout: 300_000 }, async () => {
  const client = new Client({ apiUrl: url });
  const assistants = await client.assistants.search({ graphId: 'media' });
  expect(assistants.length).toBeGreaterThan(0);

  const thread = await client.threads.create();
  const file = path.join(CORPUS, 'image/portrait-exif-orientation-6.jpg');
  const state = (await client.runs.wait(thread.thread_id, 'media', {
    input: {
      jobId: `studio-${thread.thread_id}`,
      file: { path: file, name: 'portrait.jpg' },
      user: { id: 'u-studio' },
    },
  })) as { status: string; results: Results; steps: StepRecords };

  expect(state.status, JSON.stringify(state).slice(0, 2000)).toBe('completed');
  expect(state.steps.generateThumbnails?.status).toBe('succeeded');
  const thumbs = state.results.thumbnails ?? [];
  expect(thumbs.length).toBeGreaterThanOrEqual(2);
  for (const t of thumbs) expect(t.height).toBeGreaterThan(t.width);
  // The thumbnails are real files in DATA_DIR.
  const files = fs.readdirSync(path.join(dataDir, 'artifacts', `studio-${thread.thread_id}`));
  expect(files).toEqual(expect.arrayContaining(thumbs.map((t) => t.name)));
});

test('an input without a file fails validate once with INVALID_INPUT', { timeout: 120_000 }, async () => {
  const client = new Client({ apiUrl: url });
  const thread = await client.threads.create();
  const state = (await client.runs.wait(thread.thread_id, 'media', { input: {} })) as {
    status: string;
    error: { code: string } | null;
    steps: StepRecords;
  };
  expect(state.status, JSON.stringify(state).slice(0, 2000)).toBe('failed');
  expect(state.error?.code).toBe('INVALID_INPUT');
  // Not retried: the same input would fail the same way.
  expect(state.steps.validate).toMatchObject({ status: 'failed', attempts: 1 });
});

test(
  'a job id given again with another file ends the run with a clear error and keeps that job',
  {
    timeout: 300_000,
  },
  async () => {
    const client = new Client({ apiUrl: url });
    const jobId = `studio-reuse-${process.pid}`;
    const first = (await client.runs.wait((await client.threads.create()).thread_id, 'media', {
      input: { jobId, file: { path: path.join(CORPUS, 'image/320x240.jpg') } },
    })) as { status: string };
    expect(first.status, JSON.stringify(first).slice(0, 2000)).toBe('completed');

    // Another thread, the same job id, another file.
    const second = await client.runs
      .wait((await client.threads.create()).thread_id, 'media', {
        input: { jobId, file: { path: path.join(CORPUS, 'pdf/three-pages.pdf') } },
      })
      .then(
        (values) => JSON.stringify(values),
        (err: unknown) => String(err),
      );
    expect(second).toContain(`job id ${jobId} is already used by a job for another file`);

    const store = await openJobStore(loadConfig({ DATA_DIR: dataDir, LOG_LEVEL: 'silent' }));
    try {
      expect(await store.get(jobId)).toMatchObject({ status: 'completed', fileType: 'image' });
      expect((await store.runs(jobId)).map((r) => r.step)).not.toContain('extractText');
    } finally {
      await store.close();
    }
    // No PDF text or preview landed among the first job's artifacts.
    expect(fs.readdirSync(path.join(dataDir, 'artifacts', jobId)).filter((f) => !f.startsWith('thumb-'))).toEqual([]);
  },
);

test('a review is an interrupt Studio shows, and resuming it there with a decision finishes the job', async () => {
  const client = new Client({ apiUrl: url });
  const thread = await client.threads.create();
  const jobId = `studio-review-${thread.thread_id}`;
  await client.runs.wait(thread.thread_id, 'media', {
    input: {
      jobId,
      file: { path: path.join(CORPUS, 'image/320x240.jpg') },
      instructions: { review: { when: 'always' } },
    },
  });
  const waiting = await client.threads.getState(thread.thread_id);
  expect(waiting.next).toEqual(['finalize']);
  const interrupts = waiting.tasks.flatMap((t) => t.interrupts);
  expect(interrupts.map((i) => (i.value as { reason: string }).reason)).toEqual(['the job asked for review']);

  const state = (await client.runs.wait(thread.thread_id, 'media', {
    command: { resume: { decision: 'reject', note: 'from Studio' } },
  })) as { status: string };
  expect(state.status).toBe('rejected');
}, 300_000);
