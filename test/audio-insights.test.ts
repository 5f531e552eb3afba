/**
 * The waveform step with real ffmpeg and sharp: audiowaveform JSON checked field by field for generated tones and
 * corpus recordings, loudness against ffmpeg's own ebur128 run here, silence share of a tone with a gap, videos with
 * and without sound, a damaged file, and a cancelled run whose ffmpeg must stop.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';
import { MediaError } from '../src/lib/errors.js';
import { createLogger } from '../src/lib/log.js';
import { resolveToolPaths } from '../src/lib/tools.js';
import type { JobDocument } from '../src/lib/types.js';
import { isWaveformData, PeakAccumulator, type WaveformData } from '../src/lib/waveform.js';
import { createDeps, type Deps, type StepInput } from '../src/nodes/index.js';
import { waveform } from '../src/nodes/waveform.js';
import { createRuntime, type Runtime } from '../src/runtime.js';
import { CORPUS, tempDir } from './helpers.js';

const FFMPEG = resolveToolPaths().ffmpeg;
let dir: string;
let runtime: Runtime;

function ffmpeg(...args: string[]): void {
  execFileSync(FFMPEG, ['-v', 'error', '-nostdin', '-y', ...args]);
}

/** ffmpeg's own EBU R128 figures for a file, read from its summary. */
function ffmpegLoudness(file: string): { integrated: number; peak: number } {
  const run = spawnSync(FFMPEG, ['-nostdin', '-nostats', '-i', file, '-af', 'ebur128=peak=true', '-f', 'null', '-'], {
    encoding: 'utf8',
  });
  const summary = run.stderr.slice(run.stderr.lastIndexOf('Summary:'));
  const integrated = /I:\s+(-?[\d.]+) LUFS/.exec(summary)?.[1];
  const peak = /Peak:\s+(-?[\d.]+) dBFS/.exec(summary)?.[1];
  if (integrated === undefined || peak === undefined) throw new Error(`no ebur128 summary: ${run.stderr.slice(-500)}`);
  return { integrated: Number(integrated), peak: Number(peak) };
}

function probeAudio(file: string): { codec_name: string; sample_rate: string; bit_rate: string } {
  const out = execFileSync(resolveToolPaths().ffprobe, [
    ...['-v', 'error', '-select_streams', 'a:0', '-show_entries', 'stream=codec_name,sample_rate,bit_rate'],
    ...['-of', 'json', file],
  ]);
  return (
    JSON.parse(out.toString('utf8')) as { streams: { codec_name: string; sample_rate: string; bit_rate: string }[] }
  ).streams[0]!;
}

function decodedMd5(file: string): string {
  return execFileSync(FFMPEG, ['-v', 'error', '-nostdin', '-i', file, '-map', '0:a:0', '-f', 'md5', '-'])
    .toString('utf8')
    .trim();
}

let jobs = 0;
async function runJob(file: string): Promise<JobDocument> {
  return runtime.runner.run({ jobId: `audio-${++jobs}`, file: { path: file } });
}

function artifactJson(doc: JobDocument, name: string): unknown {
  return JSON.parse(fs.readFileSync(path.join(dir, 'artifacts', doc.id, name), 'utf8')) as unknown;
}

/** Every field of the audiowaveform format, checked one by one (isWaveformData is what the code uses; this is not). */
function expectAudiowaveform(w: unknown): asserts w is WaveformData {
  const o = w as Record<string, unknown>;
  expect(Object.keys(o).sort()).toEqual(
    ['bits', 'channels', 'data', 'length', 'sample_rate', 'samples_per_pixel', 'version'].sort(),
  );
  expect(o.version).toBe(2);
  expect(o.bits).toBe(8);
  expect(o.channels).toBe(1);
  expect(Number.isInteger(o.sample_rate) && (o.sample_rate as number) > 0).toBe(true);
  expect(Number.isInteger(o.samples_per_pixel) && (o.samples_per_pixel as number) > 0).toBe(true);
  expect(Number.isInteger(o.length) && (o.length as number) > 0).toBe(true);
  expect(o.length as number).toBeLessThanOrEqual(4000);
  const data = o.data as number[];
  expect(Array.isArray(data)).toBe(true);
  expect(data.length).toBe(2 * (o.length as number) * (o.channels as number));
  for (const v of data) expect(Number.isInteger(v) && v >= -128 && v <= 127, String(v)).toBe(true);
  for (let i = 0; i < data.length; i += 2) expect(data[i]!).toBeLessThanOrEqual(data[i + 1]!);
  expect(isWaveformData(w)).toBe(true);
}

beforeAll(async () => {
  dir = tempDir('audio-insights');
  // Only the steps this file is about (and the ones everything needs): the others would only add time.
  runtime = await createRuntime(
    loadConfig({
      DATA_DIR: dir,
      INPUT_ROOTS: `${dir},${CORPUS}`,
      DISABLED_STEPS: 'transcribe,summarize,posterFrame,extractAudio',
    }),
    createLogger('silent'),
  );
}, 60_000);

afterAll(async () => {
  await runtime?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('waveform and loudness of audio files', () => {
  test('a stereo 1 kHz tone at -6 dBFS: audiowaveform JSON, a PNG, loudness within 0.5 LU of ffmpeg', async () => {
    const file = path.join(dir, 'tone.wav');
    ffmpeg('-f', 'lavfi', '-i', 'aevalsrc=0.5*sin(2*PI*1000*t)|0.5*sin(2*PI*1000*t):s=48000:d=8', file);
    const doc = await runJob(file);
    expect(doc.status, JSON.stringify(doc.steps)).toBe('completed');
    expect(doc.steps.waveform?.status).toBe('succeeded');

    const w = artifactJson(doc, 'waveform.json');
    expectAudiowaveform(w);
    // 8 s at 8 kHz, folded into pairs: what the header says covers the recording.
    expect(w.samples_per_pixel * w.length).toBeGreaterThanOrEqual(8 * w.sample_rate);
    expect(w.samples_per_pixel * (w.length - 1)).toBeLessThan(8 * w.sample_rate);
    // Every pair of a steady tone at half scale spans about -64..64.
    for (let i = 0; i < w.data.length - 2; i += 2) {
      expect(Math.abs(w.data[i]! + 64), `min ${i}`).toBeLessThanOrEqual(3);
      expect(Math.abs(w.data[i + 1]! - 64), `max ${i}`).toBeLessThanOrEqual(3);
    }
    expect(doc.results.waveform).toMatchObject({
      name: 'waveform.json',
      channels: 1,
      sampleRate: w.sample_rate,
      samplesPerPixel: w.samples_per_pixel,
      length: w.length,
    });
    expect(doc.results.waveform?.durationSec).toBeCloseTo(8, 1);

    const png = fs.readFileSync(path.join(dir, 'artifacts', doc.id, 'waveform.png'));
    const { width, height, format } = await sharp(png).metadata();
    expect({ width, height, format }).toEqual({ width: 400, height: 64, format: 'png' });
    const stats = await sharp(png).stats();
    // Drawn: the alpha channel has opaque pixels (the tone fills the middle half).
    expect(stats.channels[3]!.max).toBe(255);
    expect(stats.channels[3]!.mean).toBeGreaterThan(255 * 0.3);

    const own = ffmpegLoudness(file);
    const l = doc.results.loudness!;
    expect(Math.abs(l.integratedLufs! - own.integrated)).toBeLessThanOrEqual(0.5);
    // And what EBU R128 says of it: a 1 kHz sine at -6 dBFS on both channels is -6 LUFS.
    expect(Math.abs(l.integratedLufs! - -6)).toBeLessThanOrEqual(0.5);
    expect(Math.abs(l.truePeakDbtp! - own.peak)).toBeLessThanOrEqual(0.5);
    expect(l.loudnessRangeLu).toBeLessThanOrEqual(1);
    expect(l.silenceShare).toBe(0);

    // The player's copy: MP3, decodable, as long as the tone.
    expect(doc.results.audio).toMatchObject({ name: 'audio.mp3', format: 'mp3' });
    expect(fs.statSync(path.join(dir, 'artifacts', doc.id, 'audio.mp3')).size).toBe(doc.results.audio!.bytes);
  });

  test('a tone with a 2 s gap in 8 s: a quarter of it is silence', async () => {
    const file = path.join(dir, 'gap.wav');
    ffmpeg('-f', 'lavfi', '-i', 'aevalsrc=0.3*sin(2*PI*440*t)*(lt(t\\,3)+gte(t\\,5)):s=44100:d=8', file);
    const doc = await runJob(file);
    const l = doc.results.loudness!;
    expect(l.silence).toEqual({ method: 'silencedetect', thresholdDb: -50, minDurationSec: 0.5 });
    expect(l.silenceSec).toBeGreaterThan(1.9);
    expect(l.silenceSec).toBeLessThan(2.1);
    expect(l.silenceShare).toBeCloseTo(0.25, 1);
    // The gap is flat in the waveform: pairs in the middle of it are zero.
    const w = artifactJson(doc, 'waveform.json');
    expectAudiowaveform(w);
    const secPerPair = w.samples_per_pixel / w.sample_rate;
    const inGap = Math.floor(4 / secPerPair);
    expect([w.data[2 * inGap], w.data[2 * inGap + 1]]).toEqual([0, 0]);
    expect(w.data[2 * Math.floor(1 / secPerPair) + 1]).toBeGreaterThan(30);
  });

  test.each(['audio/voice-memo.wav', 'audio/tone.mp3'])('corpus %s: a valid waveform and loudness', async (name) => {
    const file = path.join(CORPUS, name);
    const doc = await runJob(file);
    expect(doc.steps.waveform?.status).toBe('succeeded');
    const w = artifactJson(doc, 'waveform.json');
    expectAudiowaveform(w);
    expect(w.data.some((v) => v !== 0)).toBe(true);
    const own = ffmpegLoudness(file);
    expect(Math.abs(doc.results.loudness!.integratedLufs! - own.integrated)).toBeLessThanOrEqual(0.5);
    // The player's copy: an MP3's own stream (it decodes to the same samples); a WAV encoded at 128 kb/s.
    const copyFile = path.join(dir, 'artifacts', doc.id, 'audio.mp3');
    const copy = probeAudio(copyFile);
    expect(copy.codec_name).toBe('mp3');
    expect(copy.sample_rate).toBe(probeAudio(file).sample_rate);
    if (name.endsWith('.mp3')) expect(decodedMd5(copyFile)).toBe(decodedMd5(file));
    else expect(copy.bit_rate).toBe('128000');
  });

  test("the file's own tags cannot pass for the filters' figures", async () => {
    // ffmpeg prints the tags in the same log: a title that reads like silencedetect and ebur128 must not count.
    const file = path.join(dir, 'tagged.mp3');
    ffmpeg(
      ...['-f', 'lavfi', '-i', 'aevalsrc=0.5*sin(2*PI*1000*t):s=44100:d=3'],
      ...['-metadata', 'title=silence_end: 3 | silence_duration: 3', '-metadata', 'artist=I:  -1.0 LUFS'],
      ...['-c:a', 'libmp3lame', '-b:a', '128k', file],
    );
    const doc = await runJob(file);
    expect(doc.results.loudness).toMatchObject({ silenceSec: 0, silenceShare: 0 });
    expect(Math.abs(doc.results.loudness!.integratedLufs! - ffmpegLoudness(file).integrated)).toBeLessThanOrEqual(0.5);
  });

  test('digital silence: no integrated loudness, all of it silent', async () => {
    const file = path.join(dir, 'silence.wav');
    ffmpeg('-f', 'lavfi', '-i', 'aevalsrc=0:s=44100:d=3', file);
    const doc = await runJob(file);
    expect(doc.steps.waveform?.status).toBe('succeeded');
    expect(doc.results.loudness).toMatchObject({ integratedLufs: null, truePeakDbtp: null, silenceShare: 1 });
    const w = artifactJson(doc, 'waveform.json');
    expectAudiowaveform(w);
    expect(w.data.every((v) => v === 0)).toBe(true);
  });
});

describe('waveform and loudness of videos', () => {
  test('a video with sound gets loudness and a waveform of its sound', async () => {
    const file = path.join(dir, 'with-sound.mp4');
    ffmpeg(
      ...['-f', 'lavfi', '-i', 'testsrc=size=160x120:rate=10:duration=6'],
      ...['-f', 'lavfi', '-i', 'aevalsrc=0.25*sin(2*PI*1000*t):s=44100:d=6'],
      ...['-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'aac', '-b:a', '128k', '-shortest', file],
    );
    const doc = await runJob(file);
    expect(doc.fileType).toBe('video');
    expect(doc.steps.waveform?.status).toBe('succeeded');
    expectAudiowaveform(artifactJson(doc, 'waveform.json'));
    const own = ffmpegLoudness(file);
    expect(Math.abs(doc.results.loudness!.integratedLufs! - own.integrated)).toBeLessThanOrEqual(0.5);
    // A video's player plays extractAudio's track: the waveform step makes no audio copy of its own.
    expect(doc.results.audio).toBeUndefined();
    expect(fs.existsSync(path.join(dir, 'artifacts', doc.id, 'audio.mp3'))).toBe(false);
  });

  test('a video without sound: skipped with the reason, no artifacts', async () => {
    const doc = await runJob(path.join(CORPUS, 'video/silent.mp4'));
    expect(doc.status).toBe('completed');
    expect(doc.steps.waveform).toMatchObject({ status: 'skipped', reason: 'the video has no audio stream' });
    expect(doc.results.loudness).toBeUndefined();
    expect(fs.existsSync(path.join(dir, 'artifacts', doc.id, 'waveform.json'))).toBe(false);
  });
});

describe('the step on its own', () => {
  let deps: Deps;
  beforeAll(() => {
    const config = loadConfig({ DATA_DIR: dir });
    deps = createDeps(config, runtime.store, createLogger('silent'));
  });

  function inputFor(file: string, jobId: string, ext: string, durationSec: number): StepInput {
    return {
      jobId,
      file: { path: file },
      user: null,
      fileType: 'audio',
      fileInfo: { name: path.basename(file), size: fs.statSync(file).size, mime: 'audio/x', ext, sha256: '0' },
      results: {
        metadata: {
          size: 1,
          sha256: '0',
          mime: 'audio/x',
          uploader: null,
          hasAudio: true,
          durationSec,
          streams: [{ index: 0, type: 'audio', codec: 'flac', channels: 1 }],
        },
      },
    };
  }

  test('a file ffmpeg cannot decode is CORRUPT_FILE and leaves no audio copy', async () => {
    const file = path.join(dir, 'garbage.flac');
    fs.writeFileSync(file, Buffer.from(Array.from({ length: 50_000 }, (_, i) => (i * 7919) % 251)));
    const controller = new AbortController();
    const run = waveform(inputFor(file, 'garbage', 'flac', 10), deps, {
      signal: controller.signal,
      attempt: 1,
      log: deps.log,
    });
    await expect(run).rejects.toMatchObject({ code: 'CORRUPT_FILE' });
    expect(fs.readdirSync(path.join(dir, 'artifacts', 'garbage'))).toEqual([]);
  });

  test('an audio stream with no samples: skipped, and no empty audio copy is left', async () => {
    const file = path.join(dir, 'empty.wav');
    ffmpeg('-f', 'lavfi', '-i', 'aevalsrc=0:s=8000:d=0.0001', '-t', '0', file);
    const outcome = await waveform(inputFor(file, 'empty', 'wav', 0), deps, {
      signal: new AbortController().signal,
      attempt: 1,
      log: deps.log,
    });
    expect(outcome).toEqual({ status: 'skipped', reason: 'the audio stream holds no samples' });
    expect(fs.readdirSync(path.join(dir, 'artifacts', 'empty'))).toEqual([]);
  });

  test('cancelling stops ffmpeg', async () => {
    const file = path.join(dir, 'long.flac');
    ffmpeg('-f', 'lavfi', '-i', 'anoisesrc=d=1200:c=pink:r=44100:a=0.3', '-ac', '1', file);
    const controller = new AbortController();
    const run = waveform(inputFor(file, 'long', 'flac', 1200), deps, {
      signal: controller.signal,
      attempt: 1,
      log: deps.log,
    });
    const running = (): boolean => spawnSync('pgrep', ['-f', `ffmpeg.*${file}`]).status === 0;
    for (let i = 0; i < 100 && !running(); i++) await new Promise((r) => setTimeout(r, 50));
    expect(running()).toBe(true);
    controller.abort();
    const err = await run.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MediaError);
    expect((err as MediaError).code).toBe('CANCELLED');
    expect(running()).toBe(false);
    expect(fs.readdirSync(path.join(dir, 'artifacts', 'long')).filter((n) => !n.startsWith('.'))).toEqual([]);
  }, 60_000);
});

describe('PeakAccumulator', () => {
  test('a recording much longer than declared stays within the bound, its extremes kept', () => {
    // Declared 1 s at 8 kHz (80 samples a pair: 100 pairs), then 10 minutes arrive, in odd-sized chunks.
    const acc = new PeakAccumulator(80, 4000);
    const total = 8000 * 600;
    let sent = 0;
    while (sent < total) {
      const n = Math.min(total - sent, 12_345);
      const chunk = Buffer.alloc(n * 2 + 1);
      for (let i = 0; i < n; i++) {
        const k = sent + i;
        chunk.writeInt16LE(k === 1_234_567 ? -32768 : k === 4_000_001 ? 32767 : Math.round(1000 * Math.sin(k)), i * 2);
      }
      // An odd byte count splits a sample between chunks.
      acc.push(chunk.subarray(0, n * 2 - 1));
      acc.push(chunk.subarray(n * 2 - 1, n * 2));
      sent += n;
    }
    const w = acc.finish(8000);
    expect(isWaveformData(w)).toBe(true);
    expect(acc.samples).toBe(total);
    expect(w.length).toBeLessThanOrEqual(4000);
    expect(w.length).toBeGreaterThan(2000);
    expect(w.samples_per_pixel * w.length).toBeGreaterThanOrEqual(total);
    expect(Math.min(...w.data)).toBe(-128);
    expect(Math.max(...w.data)).toBe(127);
    const at = (sample: number): number => Math.floor(sample / w.samples_per_pixel);
    expect(w.data[2 * at(1_234_567)]).toBe(-128);
    expect(w.data[2 * at(4_000_001) + 1]).toBe(127);
  });
});
