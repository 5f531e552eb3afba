/**
 * The PocketSphinx speech model against the real recognizer and ffmpeg (CI installs `pocketsphinx`,
 * `pocketsphinx-en-us` and `pocketsphinx-testdata`; without them these tests fail rather than skip). Every clip goes
 * the service's way: a 16 kHz mono 32 kb/s MP3, as extractAudio writes it, then `transcribe`.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPocketsphinxSpeech, findPocketsphinx, parseWords, toSegments } from '../src/ai/pocketsphinx.js';
import type { SpeechModel, SpeechResult, TranscriptSegment } from '../src/ai/types.js';
import { resolveToolPaths } from '../src/lib/tools.js';
import { RAW_16K, TESTDATA, testClips, transcriptions, wordEdits, wordErrorRate } from '../bench/speech-data.js';
import { CORPUS, tempDir, waitFor } from './helpers.js';

const ffmpeg = resolveToolPaths().ffmpeg;
let binary = '';
let work = '';

beforeAll(() => {
  binary = findPocketsphinx(process.env.PATH) ?? '';
  expect(binary, 'pocketsphinx_continuous and pocketsphinx-en-us must be installed').not.toBe('');
  expect(fs.existsSync(TESTDATA), 'pocketsphinx-testdata must be installed').toBe(true);
  work = tempDir('pocketsphinx');
});

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

const speech = (opts: { chunkSec?: number; concurrency?: number; modelDir?: string } = {}): SpeechModel =>
  createPocketsphinxSpeech({ binary, ffmpeg, ...opts });

const transcribe = (model: SpeechModel, audioPath: string, signal = new AbortController().signal) =>
  model.transcribe({ audioPath, durationSec: null }, { signal });

/** What extractAudio makes of a recording; `input` is ffmpeg input arguments. */
function toMp3(input: string[], name: string): string {
  const out = path.join(work, `${name}.mp3`);
  execFileSync(
    ffmpeg,
    ['-v', 'error', '-nostdin', '-y', ...input, '-ac', '1', '-ar', '16000'].concat([
      '-c:a',
      'libmp3lame',
      '-b:a',
      '32k',
      out,
    ]),
  );
  return out;
}

function expectOrderedWithin(segments: TranscriptSegment[], durationSec: number): void {
  let previousEnd = 0;
  for (const s of segments) {
    expect(s.text.trim()).not.toBe('');
    expect(s.start).toBeGreaterThanOrEqual(previousEnd);
    expect(s.end).toBeGreaterThanOrEqual(s.start);
    expect(s.end).toBeLessThanOrEqual(durationSec);
    previousEnd = s.end;
  }
}

/** Command lines of the recognizers this test process started (its own children: other suites' are not ours). */
function ourRecognizers(): string[] {
  try {
    const out = execFileSync('pgrep', ['-a', '-P', String(process.pid), '-f', 'pocketsphinx_continuous'], {
      encoding: 'utf8',
    });
    return out.split('\n').filter(Boolean);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

describe('pocketsphinx speech model', () => {
  it('parses timed words without sentence markers, noise and pronunciation numbers', () => {
    const stdout = [
      'thirty three or',
      '<s> 0.240 0.370 0.999900',
      'thirty 0.380 0.740 0.994813',
      '[NOISE] 0.750 0.800 0.5',
      'three 0.810 1.190 0.999900',
      '</s> 1.200 1.300 1.000000',
      '<s> 1.310 1.320 1.000000',
      'or(2) 1.610 1.930 0.972482',
      '<sil> 1.940 2.500 1.000000',
      '</s> 2.510 2.600 1.000000',
    ].join('\n');
    const parsed = parseWords(stdout, 30);
    expect(parsed.map((w) => [w.word, w.start, w.end, w.opensUtterance])).toEqual([
      ['thirty', 30.38, 30.74, true],
      ['three', 30.81, 31.19, false],
      ['or', 31.61, 31.93, true],
    ]);
    // Short: one segment despite the new utterance; a long pause or a long segment splits.
    expect(toSegments(parsed, 40)).toEqual([{ start: 30.38, end: 31.93, text: 'thirty three or' }]);
    const far = { word: 'later', start: 33.5, end: 34, opensUtterance: false };
    expect(toSegments([...parsed, far], 40).map((s) => s.text)).toEqual(['thirty three or', 'later']);
    expect(toSegments([...parsed, far], 33.8).at(-1)).toEqual({ start: 33.5, end: 33.8, text: 'later' });
  });

  it('findPocketsphinx finds the recognizer on PATH, by path, and nothing where it is not', () => {
    expect(binary).toMatch(/\/pocketsphinx_continuous$/);
    expect(findPocketsphinx(undefined, binary)).toBe(binary);
    expect(findPocketsphinx('/nonexistent:/tmp', null)).toBeNull();
    expect(findPocketsphinx('', null)).toBeNull();
    expect(findPocketsphinx(process.env.PATH, '/nonexistent/pocketsphinx_continuous')).toBeNull();
  });

  // Measured: 34 errors over 96 reference words (WER 0.354) on the 11 clips. The bound leaves room for another
  // MP3 encoder build, not for a broken pipeline (cut words or a wrong sample rate score far worse).
  it(
    'recognizes the pocketsphinx test recordings with a word error rate under 0.45',
    { timeout: 900_000 },
    async () => {
      const model = speech();
      const clips = testClips();
      expect(clips.length).toBe(11);
      let edits = 0;
      let total = 0;
      for (const clip of clips) {
        const result = await transcribe(model, toMp3(clip.input, clip.name));
        const score = wordEdits(clip.reference, result.text);
        edits += score.edits;
        total += score.words;
        expect(result).toMatchObject({ provider: 'pocketsphinx', quality: 'rough', language: 'en', chunks: 1 });
        expect(result.usage).toMatchObject({ inputTokens: 0, outputTokens: 0, totalTokens: 0, calls: 1 });
        expect(result.usage.latencyMs).toBeGreaterThan(0);
        expectOrderedWithin(result.segments, result.durationSec ?? 0);
        expect(result.text).toBe(result.segments.map((s) => s.text).join(' '));
        expect(result.text).not.toMatch(/<|\[|\(\d\)/);
      }
      const wer = edits / total;
      expect(wer).toBeLessThan(0.45);
      expect(wordErrorRate('Go forward, ten meters!', 'go forward ten meters')).toBe(0);
    },
  );

  it('transcribes the corpus voice memo into ordered segments', async () => {
    const result = await transcribe(speech(), path.join(CORPUS, 'audio', 'voice-memo.wav'));
    expect(result.durationSec).toBeCloseTo(4.59, 1);
    expect(result.text.length).toBeGreaterThan(0);
    expect(result.segments.length).toBeGreaterThan(0);
    expectOrderedWithin(result.segments, result.durationSec ?? 0);
  });

  it('gives silence an empty transcript, not an error', async () => {
    const mp3 = toMp3(['-f', 'lavfi', '-i', 'anullsrc=r=16000:cl=mono', '-t', '5'], 'silence');
    const result = await transcribe(speech(), mp3);
    expect(result).toMatchObject({ text: '', segments: [], chunks: 1 });
    expect(result.durationSec).toBeCloseTo(5, 0);
  });

  describe('a recording longer than a chunk', () => {
    let mp3 = '';
    let reference = '';
    beforeAll(() => {
      // The five librivox sentences back to back: about 25 s of read speech.
      const ids = [...transcriptions(path.join(TESTDATA, 'librivox', 'transcription'))];
      reference = ids.map(([, text]) => text).join(' ');
      const inputs = ids.flatMap(([id]) => ['-i', path.join(TESTDATA, 'librivox', `${id}.wav`)]);
      const streams = ids.map((_, i) => `[${i}:a]`).join('');
      mp3 = toMp3([...inputs, '-filter_complex', `${streams}concat=n=${ids.length}:v=0:a=1`], 'librivox-all');
    });

    // Measured: 3 chunks, WER 0.338 (24 errors over 71 words); in one 30 s chunk 0.324, so cutting costs little.
    it('continues the timestamps across chunk boundaries', { timeout: 600_000 }, async () => {
      const result: SpeechResult = await transcribe(speech({ chunkSec: 10, concurrency: 2 }), mp3);
      const duration = result.durationSec ?? 0;
      expect(duration).toBeGreaterThan(24);
      expect(result.chunks).toBe(3);
      expect(result.usage.calls).toBe(3);
      expectOrderedWithin(result.segments, duration);
      // Words from the first, middle and last chunks (recognized in one chunk and in three alike).
      for (const phrase of ['consider how much', 'rather selfish', 'might even have been made'])
        expect(result.text).toContain(phrase);
      expect(duration - (result.segments.at(-1)?.end ?? 0)).toBeLessThan(1.5);
      expect(wordErrorRate(reference, result.text)).toBeLessThan(0.45);
    });

    it('stops its recognizers and rejects with the reason when the signal aborts', { timeout: 300_000 }, async () => {
      expect(ourRecognizers()).toEqual([]);
      const controller = new AbortController();
      const reason = new Error('stop now');
      const running = transcribe(speech({ chunkSec: 10, concurrency: 2 }), mp3, controller.signal);
      running.catch(() => undefined);
      const seen = await waitFor('a pocketsphinx_continuous child', () => ourRecognizers()[0], 30_000);
      const workDir = path.dirname(/-infile (\S+)/.exec(seen)?.[1] ?? '/nonexistent/x');
      expect(fs.existsSync(workDir)).toBe(true);
      controller.abort(reason);
      await expect(running).rejects.toBe(reason);
      expect(ourRecognizers()).toEqual([]);
      expect(fs.existsSync(workDir)).toBe(false);
    });

    it('rejects at once with a signal aborted before the call', async () => {
      const controller = new AbortController();
      const reason = new Error('too late');
      controller.abort(reason);
      await expect(transcribe(speech(), mp3, controller.signal)).rejects.toBe(reason);
    });
  });

  it('reports the recognizer log line when a chunk fails', async () => {
    // A model folder whose acoustic model definition is empty: found, but the recognizer cannot load it.
    const model = path.join(work, 'broken-model');
    const real = '/usr/share/pocketsphinx/model/en-us';
    fs.mkdirSync(path.join(model, 'en-us'), { recursive: true });
    for (const f of fs.readdirSync(path.join(real, 'en-us')))
      if (f !== 'mdef') fs.symlinkSync(path.join(real, 'en-us', f), path.join(model, 'en-us', f));
    fs.writeFileSync(path.join(model, 'en-us', 'mdef'), '');
    for (const f of ['en-us.lm.bin', 'cmudict-en-us.dict']) fs.symlinkSync(path.join(real, f), path.join(model, f));
    const mp3 = toMp3([...RAW_16K, '-i', path.join(TESTDATA, 'goforward.raw')], 'goforward-broken');
    const failing = transcribe(speech({ modelDir: model }), mp3);
    await expect(failing).rejects.toMatchObject({ code: 'PROVIDER_ERROR' });
    await expect(failing).rejects.toThrow(/^pocketsphinx failed on the audio from 0 s: \S/);
    expect(ourRecognizers()).toEqual([]);
  });
});
