/**
 * Durability: a `process` run is SIGKILLed part-way (after some steps are checkpointed, while a long step runs),
 * restarted with the same job id, and the job completes without executing any finished step again. Executions are
 * counted from the step_runs table, which records every call of a step function.
 */
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { BaseCheckpointSaver } from '@langchain/langgraph';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';
import { resolveToolPaths } from '../src/lib/tools.js';
import type { JobDocument } from '../src/lib/types.js';
import { openStores } from '../src/store/index.js';
import { BIN, runCli, stepRuns, tempDir, TestState, userEnv } from './helpers.js';

interface RunRow {
  step: string;
  status: string;
}

let dir: string;
let video: string;

beforeAll(() => {
  dir = tempDir('resume');
  video = path.join(dir, 'lecture.mkv');
  const srt = path.join(dir, 'lecture.srt');
  fs.writeFileSync(
    srt,
    Array.from({ length: 40 }, (_, i) => {
      const t = (s: number) =>
        `00:${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')},000`;
      return `${i + 1}\n${t(i * 10)} --> ${t(i * 10 + 5)}\nSentence number ${i + 1} of a long recorded lecture about durable workflows.\n`;
    }).join('\n'),
  );
  // Ten minutes of small video with sound and subtitles: extractAudio takes long enough to be killed in the middle.
  execFileSync(resolveToolPaths().ffmpeg, [
    ...['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=size=160x120:rate=5:duration=600'],
    ...['-f', 'lavfi', '-i', 'sine=frequency=300:sample_rate=44100:duration=600', '-i', srt],
    ...['-map', '0:v', '-map', '1:a', '-map', '2:s', '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'aac'],
    ...['-c:s', 'srt', video],
  ]);
}, 120_000);

/** What the test opened, closed whether it passes or not (the store before its database). */
const cleanups: (() => Promise<void>)[] = [];

afterAll(async () => {
  for (const cleanup of cleanups) await cleanup().catch(() => undefined);
  fs.rmSync(dir, { recursive: true, force: true });
});

/** True once posterFrame's result is durably in the job's checkpoint (a pending write of the open superstep). */
async function posterFrameCheckpointed(checkpointer: BaseCheckpointSaver, jobId: string): Promise<boolean> {
  const tuple = await checkpointer.getTuple({ configurable: { thread_id: jobId } });
  return (tuple?.pendingWrites ?? []).some(
    ([, channel, value]) =>
      channel === 'steps' && (value as Record<string, { status?: string }>).posterFrame?.status === 'succeeded',
  );
}

async function checkpointCount(checkpointer: BaseCheckpointSaver, jobId: string): Promise<number> {
  let n = 0;
  for await (const _ of checkpointer.list({ configurable: { thread_id: jobId } })) n++;
  return n;
}

test(
  'a job killed mid-run resumes from its checkpoint and runs no finished step again',
  { timeout: 600_000 },
  async () => {
    const state = await TestState.create('resume-data');
    cleanups.push(() => state.drop());
    // The job's step runs and checkpoints, read as the service reads them (the same store and saver classes).
    const stores = await openStores(loadConfig({ ...state.env, LOG_LEVEL: 'silent' }));
    cleanups.unshift(() => stores.close());
    const { checkpointer } = stores;
    const jobId = 'resume-after-kill';
    const readRuns = async (): Promise<RunRow[]> =>
      (await stepRuns(state, jobId)).map(({ step, status }) => ({ step, status }));
    const child = spawn(BIN, ['process', '--job-id', jobId, video], {
      env: { ...userEnv(), ...state.env, LOG_LEVEL: 'warn' },
      stdio: 'ignore',
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.on('exit', (_code, signal) => resolve(signal)),
    );

    // Kill once validate, extractMetadata and posterFrame have finished and are checkpointed, and extractAudio is
    // running. (A step that finished but was not yet checkpointed may run again: that is at-least-once, not a loss.)
    const deadline = Date.now() + 120_000;
    let before: RunRow[] = [];
    for (;;) {
      before = await readRuns();
      const done = new Set(before.filter((r) => r.status === 'succeeded').map((r) => r.step));
      const running = before.some((r) => r.step === 'extractAudio' && r.status === 'running');
      if (done.has('validate') && done.has('extractMetadata') && done.has('posterFrame') && running) {
        if (await posterFrameCheckpointed(checkpointer, jobId)) break;
      }
      if (Date.now() > deadline || child.exitCode !== null)
        throw new Error(`never reached the kill point: ${JSON.stringify(before)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    before = await readRuns();
    const finishedBefore = before.filter((r) => r.status === 'succeeded').map((r) => r.step);
    expect(finishedBefore).toEqual(expect.arrayContaining(['validate', 'extractMetadata', 'posterFrame']));
    expect(finishedBefore).not.toContain('summarize');
    expect(await checkpointCount(checkpointer, jobId)).toBeGreaterThan(0);

    const res = await runCli(['process', '--json', '--job-id', jobId, video], state.env, 540_000);
    expect(res.code, res.stderr).toBe(0);
    const doc = JSON.parse(res.stdout) as JobDocument;
    expect(doc.status).toBe('completed');
    expect(doc.results.audio?.bytes).toBeGreaterThan(100_000);
    expect(doc.results.transcript?.text).toContain('Sentence number 1 of a long recorded lecture');
    expect(doc.steps.summarize?.status).toBe('succeeded');

    const after = await readRuns();
    const executions = (step: string) => after.filter((r) => r.step === step);
    // Steps that had finished before the kill were not executed again.
    for (const step of finishedBefore) expect(executions(step), `${step}: ${JSON.stringify(after)}`).toHaveLength(1);
    // Every step finished exactly once; only the interrupted execution was left unfinished.
    for (const step of ['validate', 'extractMetadata', 'posterFrame', 'extractAudio', 'transcribe', 'summarize']) {
      expect(
        executions(step).filter((r) => r.status === 'succeeded'),
        step,
      ).toHaveLength(1);
    }
    expect(executions('extractAudio').map((r) => r.status)).toEqual(['running', 'succeeded']);
    // The finished job's checkpoints were compacted.
    expect(await checkpointCount(checkpointer, jobId)).toBe(0);
  },
);
