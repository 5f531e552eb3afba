/**
 * Media the sniffing alone would miss, and media that is damaged but usable, through `process` (the same steps as the
 * service). Elementary streams (video with no container around it: MPEG-1/2, raw H.264 and HEVC; raw AC-3 and MPEG
 * audio layer II) complete as video or audio, read by a demuxer of their own. A file cut short (an interrupted
 * upload) completes with what can be read, flagged TRUNCATED, and its steps use the readable length; a WAV whose
 * header claims more than the file holds likewise; a file with nothing readable is CORRUPT_FILE.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { resolveToolPaths } from '../src/lib/tools.js';
import type { JobDocument } from '../src/lib/types.js';
import { runCli, tempDir } from './helpers.js';

const dir = tempDir('damaged-media');
const { ffmpeg, ffprobe } = resolveToolPaths();
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Runs ffmpeg to make `name` in the test's folder; its path. */
function make(name: string, args: string[]): string {
  const file = path.join(dir, name);
  execFileSync(ffmpeg, ['-v', 'error', '-y', ...args, file]);
  return file;
}

/** The first `share` of `file`'s bytes, as an upload stopped part way would leave it. */
function cutShort(file: string, name: string, share: number): string {
  const bytes = fs.readFileSync(file);
  const out = path.join(dir, name);
  fs.writeFileSync(out, bytes.subarray(0, Math.floor(bytes.length * share)));
  return out;
}

async function processed(file: string): Promise<JobDocument> {
  const res = await runCli(['process', '--json', file], { DATA_DIR: path.join(dir, 'data') }, 120_000);
  expect(res.stdout, res.stderr).not.toBe('');
  return JSON.parse(res.stdout) as JobDocument;
}

const TEST_PATTERN = ['-f', 'lavfi', '-i', 'testsrc=size=160x120:rate=25:duration=2'];
const TONE = (seconds: number) => ['-f', 'lavfi', '-i', `sine=frequency=440:duration=${seconds}`];

describe('elementary streams', () => {
  const streams: [string, string[], string][] = [
    ['mpeg2.m2v', ['-c:v', 'mpeg2video', '-f', 'mpeg2video'], 'mpeg2video'],
    ['mpeg1.m1v', ['-c:v', 'mpeg1video', '-f', 'mpeg1video'], 'mpeg1video'],
    ['raw.h264', ['-c:v', 'libx264', '-preset', 'ultrafast', '-f', 'h264'], 'h264'],
    ['raw.hevc', ['-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', 'log-level=error', '-f', 'hevc'], 'hevc'],
  ];
  test.each(streams)('%s completes as video, read as %s, with its real length', async (name, args, codec) => {
    // Named .bin: the name says nothing, the bytes decide.
    const file = make(name.replace(/\.\w+$/, '.bin'), [...TEST_PATTERN, ...args]);
    const doc = await processed(file);
    expect(doc.status, JSON.stringify(doc.error)).toBe('completed');
    expect(doc.fileType).toBe('video');
    expect(doc.results.metadata?.streams?.[0]?.codec).toBe(codec);
    // Two seconds at 25 frames a second: the last frame starts at 1.96 s.
    expect(doc.results.metadata?.durationSec).toBeGreaterThan(1.8);
    expect(doc.results.metadata?.durationSec).toBeLessThanOrEqual(2.05);
    expect(doc.steps.posterFrame?.status).toBe('succeeded');
    expect(doc.warnings).toBeUndefined();
  });

  test.each([
    ['tone.ac3', 'ac3'],
    ['tone.mp2', 'mp2'],
  ])('a raw %s audio stream completes as audio', async (name, codec) => {
    const file = make(name.replace(/\.\w+$/, '.bin'), [...TONE(2), '-c:a', codec, '-f', codec]);
    const doc = await processed(file);
    expect(doc.status, JSON.stringify(doc.error)).toBe('completed');
    expect(doc.fileType).toBe('audio');
    expect(doc.results.metadata?.streams?.[0]?.codec).toBe(codec);
  });
});

describe('files cut short', () => {
  let mp4: string;
  let wav: string;
  beforeAll(() => {
    mp4 = make('whole.mp4', [
      ...['-f', 'lavfi', '-i', 'testsrc=size=160x120:rate=25:duration=10', ...TONE(10)],
      ...['-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'aac', '-movflags', '+faststart'],
    ]);
    wav = make('whole.wav', [...TONE(10), '-ac', '1', '-ar', '16000']);
  });

  test('a whole file has no warning', async () => {
    for (const file of [mp4, wav]) {
      const doc = await processed(file);
      expect(doc.status).toBe('completed');
      expect(doc.warnings).toBeUndefined();
      expect(doc.results.metadata?.declaredDurationSec).toBeUndefined();
    }
  });

  test('an MP4 cut in half completes with what can be read, TRUNCATED, and its steps use that length', async () => {
    const doc = await processed(cutShort(mp4, 'half.mp4', 0.5));
    expect(doc.status).toBe('completed_with_errors');
    expect(doc.warnings).toEqual([{ code: 'TRUNCATED', message: expect.stringMatching(/declares 10 s/) as string }]);
    const meta = doc.results.metadata!;
    expect(meta.declaredDurationSec).toBe(10);
    expect(meta.durationSec).toBeGreaterThan(3);
    expect(meta.durationSec).toBeLessThan(7);
    // The extracted sound is as long as what was there, not the ten seconds the header promised.
    expect(doc.steps.extractAudio?.status).toBe('succeeded');
    expect(doc.results.audio?.durationSec).toBeCloseTo(meta.durationSec!, 1);
    const out = execFileSync(ffprobe, ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', '-i', mp4]);
    expect(Number(out.toString())).toBeCloseTo(10, 0);
  });

  test('a WAV whose header claims twice what the file holds is flagged, with its real length', async () => {
    const doc = await processed(cutShort(wav, 'half.wav', 0.5));
    expect(doc.status).toBe('completed_with_errors');
    expect(doc.warnings?.map((w) => w.code)).toEqual(['TRUNCATED']);
    expect(doc.results.metadata?.declaredDurationSec).toBe(10);
    expect(doc.results.metadata?.durationSec).toBeCloseTo(5, 0);
  });

  test('a file with nothing readable after its header is CORRUPT_FILE', async () => {
    const doc = await processed(cutShort(wav, 'header-only.wav', 100 / fs.statSync(wav).size));
    expect(doc.status).toBe('failed');
    expect(doc.error?.code).toBe('CORRUPT_FILE');
  });
});
