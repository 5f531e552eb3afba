/**
 * Durability: a `process` run is SIGKILLed part-way (after some steps are checkpointed, while a long step runs),
 * restarted with the same job id, and the job completes without executing any finished step again. Executions are
 * counted from the step_runs table, which records every call of a step function.
 */
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { resolveToolPaths } from '../src/lib/tools.js';
import type { JobDocument } from '../src/lib/types.js';
import { BIN, isMissingTable, runCli, tempDir, userEnv } from './helpers.js';

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

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function readRuns(dbPath: string, jobId: string): RunRow[] {
  if (!fs.existsSync(dbPath)) return [];
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT step, status FROM step_runs WHERE job_id = ? ORDER BY id').all(jobId) as RunRow[];
  } catch (err) {
    if (isMissingTable(err)) return []; // the table is not created yet
    throw err;
  } finally {
    db.close();
  }
}

/** True once posterFrame's result is durably in the checkpoint tables (a pending write of the open superstep). */
function posterFrameCheckpointed(dbPath: string, jobId: string): boolean {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    const row = db
      .prepare(
        `SELECT count(*) AS n FROM writes WHERE thread_id = ? AND channel = 'steps'
         AND CAST(value AS TEXT) LIKE '%posterFrame%succeeded%'`,
      )
      .get(jobId) as { n: number };
    return row.n > 0;
  } catch (err) {
    if (isMissingTable(err)) return false;
    throw err;
  } finally {
    db.close();
  }
}

function checkpointCount(dbPath: string, jobId: string): number {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM checkpoints WHERE thread_id = ?').get(jobId) as { n: number }).n;
  } finally {
    db.close();
  }
}

test(
  'a job killed mid-run resumes from its checkpoint and runs no finished step again',
  { timeout: 600_000 },
  async () => {
    const dataDir = path.join(dir, 'data');
    const dbPath = path.join(dataDir, 'orchestrator.db');
    const jobId = 'resume-after-kill';
    const child = spawn(BIN, ['process', '--job-id', jobId, video], {
      env: { ...userEnv(), DATA_DIR: dataDir, LOG_LEVEL: 'warn' },
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
      before = readRuns(dbPath, jobId);
      const done = new Set(before.filter((r) => r.status === 'succeeded').map((r) => r.step));
      const running = before.some((r) => r.step === 'extractAudio' && r.status === 'running');
      if (done.has('validate') && done.has('extractMetadata') && done.has('posterFrame') && running) {
        if (posterFrameCheckpointed(dbPath, jobId)) break;
      }
      if (Date.now() > deadline || child.exitCode !== null)
        throw new Error(`never reached the kill point: ${JSON.stringify(before)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    before = readRuns(dbPath, jobId);
    const finishedBefore = before.filter((r) => r.status === 'succeeded').map((r) => r.step);
    expect(finishedBefore).toEqual(expect.arrayContaining(['validate', 'extractMetadata', 'posterFrame']));
    expect(finishedBefore).not.toContain('summarize');
    expect(checkpointCount(dbPath, jobId)).toBeGreaterThan(0);

    const res = await runCli(['process', '--json', '--job-id', jobId, video], { DATA_DIR: dataDir }, 540_000);
    expect(res.code, res.stderr).toBe(0);
    const doc = JSON.parse(res.stdout) as JobDocument;
    expect(doc.status).toBe('completed');
    expect(doc.results.audio?.bytes).toBeGreaterThan(100_000);
    expect(doc.results.transcript?.text).toContain('Sentence number 1 of a long recorded lecture');
    expect(doc.steps.summarize?.status).toBe('succeeded');

    const after = readRuns(dbPath, jobId);
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
    expect(checkpointCount(dbPath, jobId)).toBe(0);
  },
);
