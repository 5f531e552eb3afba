/**
 * The compiled graph: fan-out, deferred fan-in, step policy (required vs optional failures), DISABLED_STEPS.
 * Policy tests drive the graph through a scripted dispatcher (the graph's own seam) with a fresh in-memory
 * checkpointer each; the DISABLED_STEPS test runs the real steps on a corpus file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SqliteSaver } from '@langchain/langgraph-checkpoint-sqlite';
import sharp from 'sharp';
import { afterEach, describe, expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';
import type { Dispatcher } from '../src/graph/dispatcher.js';
import { compileGraph } from '../src/graph/graph.js';
import { createLogger } from '../src/lib/log.js';
import type { AnyStepName, FileType, FinishedJob, StepErrorCode } from '../src/lib/types.js';
import type { JobSink, StepOutcome } from '../src/nodes/index.js';
import { createRuntime } from '../src/runtime.js';
import { CORPUS, tempDir } from './helpers.js';

type Script = Partial<Record<AnyStepName, StepOutcome | { outcome: StepOutcome; attempts: number }>>;

const failed = (code: StepErrorCode, message: string, attempts: number) => ({
  outcome: { status: 'failed', code, message } satisfies StepOutcome,
  attempts,
});

function scripted(fileType: FileType, script: Script = {}) {
  const calls: AnyStepName[] = [];
  const finished: FinishedJob[] = [];
  const dispatcher: Dispatcher = {
    async run(step) {
      calls.push(step);
      await new Promise((r) => setTimeout(r, step === 'posterFrame' ? 1 : 5));
      const scriptedOutcome = script[step];
      if (scriptedOutcome && 'outcome' in scriptedOutcome) return scriptedOutcome;
      if (scriptedOutcome) return { outcome: scriptedOutcome, attempts: 1, runId: 0 };
      if (step === 'validate') {
        return {
          outcome: {
            status: 'succeeded',
            fileType,
            fileInfo: { name: 'x', size: 1, mime: 'x/x', ext: 'x', sha256: '0'.repeat(64) },
          },
          attempts: 1,
          runId: 0,
        };
      }
      return { outcome: { status: 'succeeded' }, attempts: 1, runId: 0 };
    },
  };
  const sink: JobSink = {
    saveFinished: (job) => {
      finished.push(job);
      return Promise.resolve();
    },
    stepStarted: () => Promise.resolve(0),
    stepEnded: () => Promise.resolve(),
    aiUsed: () => Promise.resolve(),
  };
  const graph = compileGraph({ dispatcher, sink }, SqliteSaver.fromConnString(':memory:'));
  const run = () =>
    graph.invoke(
      { jobId: 'j1', file: { path: '/nowhere' } },
      { configurable: { thread_id: 'j1' }, durability: 'sync' },
    );
  return { calls, finished, run };
}

describe('graph policy', () => {
  test('video: poster frame, rendition and storyboard in parallel with the audio chain, finalize once after all', async () => {
    const s = scripted('video');
    const state = await s.run();
    expect(s.calls.slice(0, 2)).toEqual(['validate', 'extractMetadata']);
    // The branch heads start together (in any order); the chain follows.
    expect(s.calls.slice(2, 7).sort()).toEqual([
      'extractAudio',
      'posterFrame',
      'storyboard',
      'transcodeVideo',
      'waveform',
    ]);
    expect(s.calls.slice(7)).toEqual(['transcribe', 'summarize']);
    expect(s.finished).toHaveLength(1);
    expect(state.status).toBe('completed');
  });

  test('an optional step that fails leaves the job completed_with_errors', async () => {
    const s = scripted('image', { analyzeImage: failed('PROVIDER_ERROR', 'model down', 3) });
    const state = await s.run();
    expect(state.status).toBe('completed_with_errors');
    expect(state.steps.analyzeImage).toMatchObject({
      status: 'failed',
      attempts: 3,
      error: { code: 'PROVIDER_ERROR' },
    });
    expect(state.steps.generateThumbnails?.status).toBe('succeeded');
    expect(state.error).toBeNull();
  });

  test('a required step that fails fails the job, with its code and step', async () => {
    const s = scripted('pdf', { extractText: failed('CORRUPT_FILE', 'bad xref', 1) });
    const state = await s.run();
    expect(state.status).toBe('failed');
    expect(state.error).toEqual({ code: 'CORRUPT_FILE', message: 'bad xref', step: 'extractText' });
    expect(s.calls).not.toContain('summarize');
    expect(state.steps.summarize).toMatchObject({ status: 'skipped', reason: 'extractText failed' });
  });

  test('validate failing goes straight to finalize', async () => {
    const s = scripted('image', { validate: failed('EMPTY_FILE', 'empty', 1) });
    const state = await s.run();
    expect(s.calls).toEqual(['validate']);
    expect(s.finished[0]).toMatchObject({ status: 'failed', error: { code: 'EMPTY_FILE', step: 'validate' } });
    expect(state.status).toBe('failed');
  });

  test('a step that ends its chain skips the rest of it with the same reason', async () => {
    const s = scripted('video', {
      extractAudio: { status: 'skipped', reason: 'the video has no audio stream', endsChain: true },
    });
    const state = await s.run();
    expect(s.calls).not.toContain('transcribe');
    expect(state.steps.transcribe).toMatchObject({ status: 'skipped', reason: 'the video has no audio stream' });
    expect(state.steps.summarize).toMatchObject({ status: 'skipped', reason: 'the video has no audio stream' });
    expect(state.status).toBe('completed');
  });
});

describe('DISABLED_STEPS with the real steps', () => {
  let dataDir: string | undefined;
  afterEach(() => {
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('a disabled step is skipped with a reason and the job completes', async () => {
    dataDir = tempDir('disabled');
    const runtime = await createRuntime(
      loadConfig({ DATA_DIR: dataDir, DISABLED_STEPS: 'analyzeImage' }),
      createLogger('silent'),
    );
    try {
      const doc = await runtime.runner.run({
        jobId: 'disabled-1',
        file: { path: path.join(CORPUS, 'image/320x240.jpg') },
      });
      expect(doc.status).toBe('completed');
      expect(doc.steps.analyzeImage).toMatchObject({ status: 'skipped', reason: 'disabled by DISABLED_STEPS' });
      expect(doc.results.analysis).toBeUndefined();
      expect(doc.results.thumbnails?.length).toBeGreaterThan(0);
      // Checkpoints of the finished job are compacted away; the job store keeps the result.
      expect(await runtime.runner.hasCheckpoint('disabled-1')).toBe(false);
      expect((await runtime.store.get('disabled-1'))?.status).toBe('completed');
      expect((await runtime.store.runs('disabled-1')).map((r) => r.step).sort()).toEqual(
        ['extractMetadata', 'generateThumbnails', 'validate'].sort(),
      );
    } finally {
      await runtime.close();
    }
  });
});

describe('image statistics', () => {
  test("dominantColor is the colour that covers most of the picture (the palette's first)", async () => {
    const dir = tempDir('dominant');
    // A dark green picture with a near-white band over a tenth of it: the band must not win.
    const width = 400;
    const height = 300;
    const pixels = Buffer.alloc(width * height * 3);
    for (let i = 0; i < width * height; i++) {
      const white = i < width * 30;
      pixels.set(white ? [248, 248, 248] : [26, 61, 26], i * 3);
    }
    const file = path.join(dir, 'jungle.png');
    await sharp(pixels, { raw: { width, height, channels: 3 } })
      .png()
      .toFile(file);
    const runtime = await createRuntime(
      loadConfig({ DATA_DIR: dir, INPUT_ROOTS: dir, AI_PROVIDERS: 'vision=off' }),
      createLogger('silent'),
    );
    try {
      const doc = await runtime.runner.run({ jobId: 'dominant-1', file: { path: file } });
      const analysis = doc.results.analysis!;
      expect(analysis.palette[0]?.color).toBe('#1a3d1a');
      expect(analysis.palette[0]?.share).toBeCloseTo(0.9, 1);
      expect(analysis.dominantColor).toBe('#1a3d1a');
    } finally {
      await runtime.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
