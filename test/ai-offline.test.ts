/**
 * With no AI configuration at all, the AI steps still do real work offline: the COCO detector labels a photo of
 * people, PocketSphinx transcribes a voice memo (read speech from Debian's pocketsphinx-testdata, recorded as a
 * phone would: AAC in an M4A), and the extractive summarizer summarizes it. Through the CLI's `process`, in-process.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { resolveToolPaths } from '../src/lib/tools.js';
import type { JobDocument } from '../src/lib/types.js';
import { CORPUS, runCli, tempDir } from './helpers.js';

const LIBRIVOX = '/usr/share/pocketsphinx/test/data/librivox';
let dir: string;
let memo: string;

beforeAll(() => {
  dir = tempDir('ai-offline');
  memo = path.join(dir, 'voice-memo.m4a');
  const clips = fs
    .readdirSync(LIBRIVOX)
    .filter((f) => f.endsWith('.wav'))
    .sort();
  expect(clips.length).toBeGreaterThanOrEqual(5);
  // Five sentences of read speech, joined and re-encoded as a phone's voice memo (stereo AAC at 44.1 kHz).
  execFileSync(resolveToolPaths().ffmpeg, [
    ...['-v', 'error', '-y'],
    ...clips.flatMap((c) => ['-i', path.join(LIBRIVOX, c)]),
    ...['-filter_complex', `${clips.map((_, i) => `[${i}:a]`).join('')}concat=n=${clips.length}:v=0:a=1[a]`],
    ...['-map', '[a]', '-ac', '2', '-ar', '44100', '-c:a', 'aac', '-b:a', '96k', memo],
  ]);
}, 60_000);

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function processFile(file: string): Promise<JobDocument> {
  const res = await runCli(['process', file, '--json'], { DATA_DIR: path.join(dir, 'data') }, 540_000);
  expect(res.code, res.stderr).toBe(0);
  return JSON.parse(res.stdout) as JobDocument;
}

test('a photo of people gets labels and a face count from the offline detector', { timeout: 600_000 }, async () => {
  // A wedding: the couple and the best man facing the camera.
  const doc = await processFile(path.join(CORPUS, 'image/camera-canon-ixus.jpg'));
  expect(doc.status).toBe('completed');
  const analysis = doc.results.analysis!;
  expect(analysis.provider).toBe('human');
  expect(analysis.model).toBe('centernet-coco+blazeface+facemesh');
  expect(analysis.labels[0]).toMatchObject({ name: 'person' });
  expect(analysis.labels[0]!.score).toBeGreaterThan(0.5);
  expect(analysis.faceCount).toBeGreaterThanOrEqual(2);
  expect(analysis.faces).toHaveLength(analysis.faceCount!);
  expect(analysis.usage).toMatchObject({ calls: 1, totalTokens: 0 });
  // No tokens were spent, so the document carries usage only as calls.
  expect(doc.usage).toMatchObject({ totalTokens: 0, calls: 1 });
});

test('a voice memo gets a rough transcript and a summary', { timeout: 600_000 }, async () => {
  const doc = await processFile(memo);
  expect(doc.status, JSON.stringify(doc.steps)).toBe('completed');
  expect(doc.fileType).toBe('audio');
  const transcript = doc.results.transcript!;
  expect(transcript).toMatchObject({
    provider: 'pocketsphinx',
    source: 'speech',
    quality: 'rough',
    language: 'en',
  });
  // Rough, but about the recording: words of Sense and Sensibility's first chapter come through.
  const words = new Set(transcript.text.toLowerCase().split(/\W+/));
  const expected = ['dashwood', 'young', 'man', 'selfish', 'married', 'woman', 'respectable', 'amiable'];
  expect(expected.filter((w) => words.has(w)).length).toBeGreaterThanOrEqual(4);
  expect(transcript.segments).toBeGreaterThanOrEqual(2);
  expect(transcript.durationSec).toBeGreaterThan(20);
  const summary = doc.results.summary!;
  expect(summary.provider).toBe('local-extractive');
  expect(summary.source).toBe('transcript');
  expect(summary.text.length).toBeGreaterThan(40);
});

test(
  'a hostile subtitle track is bounded: no control characters, no cue beyond the recording',
  {
    timeout: 600_000,
  },
  async () => {
    const srt = path.join(dir, 'hostile.srt');
    fs.writeFileSync(
      srt,
      [
        '1\n00:00:00,500 --> 00:00:02,000\nHello \u001b[31mred\u001b[0m world\u202e and more words here.\n',
        '2\n00:00:02,500 --> 00:00:04,000\nA second line of honest subtitles for the test.\n',
        '3\n99:59:59,000 --> 99:59:59,500\nA cue far past the end of a four second video.\n',
      ].join('\n'),
    );
    const video = path.join(dir, 'hostile.mkv');
    execFileSync(resolveToolPaths().ffmpeg, [
      ...['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=size=160x120:rate=5:duration=4'],
      ...['-i', srt, '-map', '0:v', '-map', '1:s', '-c:v', 'libx264', '-preset', 'ultrafast', '-c:s', 'srt', video],
    ]);
    const doc = await processFile(video);
    const transcript = doc.results.transcript!;
    expect(transcript.provider).toBe('subtitles');
    expect(transcript.segments).toBe(2);
    const artifacts = path.join(dir, 'data', 'artifacts', doc.id);
    const segments = JSON.parse(fs.readFileSync(path.join(artifacts, 'transcript.json'), 'utf8')) as {
      start: number;
      end: number;
      text: string;
    }[];
    expect(segments.map((s) => s.text)).toEqual([
      'Hello [31mred[0m world and more words here.',
      'A second line of honest subtitles for the test.',
    ]);
    for (const s of segments) expect(s.end).toBeLessThanOrEqual(doc.results.metadata!.durationSec!);
    for (const name of ['transcript.txt', 'transcript.srt', 'transcript.vtt']) {
      const written = fs.readFileSync(path.join(artifacts, name), 'utf8');
      expect(written.includes('\u001b') || written.includes('\u202e') || written.includes('99:59'), name).toBe(false);
    }
  },
);
