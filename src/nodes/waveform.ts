/**
 * waveform: the sound of an audio file or a video, seen and measured in one decode of its first audio stream (a
 * video's pictures are not decoded). ffmpeg splits the decoded sound three ways:
 * - EBU R128 loudness (`ebur128`, true peak) and silences (`silencedetect`), read from its log as it runs;
 * - mono 16-bit PCM at 8 kHz on stdout, folded into min/max pairs as it streams: `waveform.json` in the BBC
 *   audiowaveform format (peaks.js reads it) and `waveform.png` for lists;
 * - for an audio file, `audio.mp3` (128 kb/s, at most stereo; an MP3 upload's own stream, copied): what the
 *   dashboard's player plays, whatever the upload's format. A video's player has extractAudio's track.
 * The video's own extracted track (extractAudio, 16 kHz mono MP3) is not measured: a mono downmix reads 3 LU low for
 * stereo, and a lossy 16 kHz copy moves the true peak.
 */
import { MediaError } from '../lib/errors.js';
import { mediaInput } from '../lib/media-types.js';
import { lastLine, runTool, ToolError } from '../lib/tools.js';
import type { Loudness, Waveform } from '../lib/types.js';
import { LoudnessLog, PeakAccumulator, samplesPerPixelFor, waveformPng } from '../lib/waveform.js';
import type { StepFn } from './deps.js';
import { AUDIO_ARTIFACT } from './extract-audio.js';

export const WAVEFORM_ARTIFACT = 'waveform.json';
export const WAVEFORM_PNG_ARTIFACT = 'waveform.png';

/** The PCM the peaks are computed from: enough for a picture, an hour is 58 MB streamed and never kept. */
export const WAVEFORM_SAMPLE_RATE = 8000;
/** At most this many min/max pairs, whatever the length (a 10 s clip gets 1000; an hour 3600 or fewer). */
export const WAVEFORM_MAX_POINTS = 4000;
/** 10 ms a pair at 8 kHz: finer shows nothing more. */
const MIN_SAMPLES_PER_PIXEL = 80;
/** Silence: below -50 dBFS on every channel for at least half a second (ffmpeg's silencedetect). */
export const SILENCE = { thresholdDb: -50, minDurationSec: 0.5 };

export const waveform: StepFn = async (input, deps, ctx) => {
  const meta = input.results.metadata;
  if (!meta?.hasAudio) {
    return {
      status: 'skipped',
      reason: input.fileType === 'video' ? 'the video has no audio stream' : 'the file has no audio stream',
    };
  }
  const durationSec = meta.durationSec ?? 0;
  const stream = meta.streams?.find((s) => s.type === 'audio');
  const peaks = new PeakAccumulator(
    samplesPerPixelFor(durationSec * WAVEFORM_SAMPLE_RATE, WAVEFORM_MAX_POINTS, MIN_SAMPLES_PER_PIXEL),
    WAVEFORM_MAX_POINTS,
  );
  const log = new LoudnessLog();
  const playable = input.fileType === 'audio';
  // An MP3 upload is copied as it is (encoding costs five times the rest of the step); anything else is encoded.
  const copyMp3 = stream?.codec === 'mp3';
  const run = async (mp3: string | null): Promise<void> => {
    const encode = mp3 !== null && !copyMp3;
    const graph = [
      `[0:a:0]asplit=${encode ? 3 : 2}${encode ? '[l][w][r]' : '[l][w]'}`,
      `[l]ebur128=peak=true:framelog=verbose,silencedetect=n=${SILENCE.thresholdDb}dB:d=${SILENCE.minDurationSec},anullsink`,
      `[w]aresample=${WAVEFORM_SAMPLE_RATE},aformat=sample_fmts=s16:channel_layouts=mono[pcm]`,
    ].join(';');
    const args = [
      ...['-hide_banner', '-nostdin', '-nostats', '-v', 'info'],
      ...mediaInput(input.file.path, input.fileInfo?.ext, 'ffmpeg'),
      ...['-filter_complex', graph, '-map', '[pcm]', '-f', 's16le', 'pipe:1'],
    ];
    if (mp3 && copyMp3) args.push('-map', '0:a:0', '-c:a', 'copy', '-map_metadata', '-1', '-f', 'mp3', '-y', mp3);
    else if (mp3) {
      const channels = String(Math.min(2, Math.max(1, stream?.channels ?? 2)));
      args.push('-map', '[r]', '-c:a', 'libmp3lame', '-b:a', '128k', '-ac', channels);
      args.push('-map_metadata', '-1', '-f', 'mp3', '-y', mp3);
    }
    await runTool(deps.tools.ffmpeg, args, {
      // Decoding, measuring and encoding run at well over 20x real time: real time is a generous limit.
      timeoutMs: Math.max(120_000, durationSec * 1000),
      signal: ctx.signal,
      onStdout: (chunk) => peaks.push(chunk),
      onStderr: (text) => log.push(text),
    });
    // Nothing decoded: no audio copy either (an empty MP3 must not become an artifact).
    if (peaks.samples === 0) throw new NoSamples();
  };
  let audio: Awaited<ReturnType<typeof deps.artifacts.produce>> | null = null;
  try {
    if (playable) audio = await deps.artifacts.produce(input.jobId, AUDIO_ARTIFACT, run);
    else await run(null);
  } catch (err) {
    if (err instanceof NoSamples) return { status: 'skipped', reason: 'the audio stream holds no samples' };
    if (err instanceof ToolError)
      throw new MediaError('CORRUPT_FILE', `the audio stream cannot be decoded: ${lastLine(err.stderr)}`);
    throw err;
  }
  const heardSec = peaks.samples / WAVEFORM_SAMPLE_RATE;
  const reading = log.finish(heardSec);
  if (!reading.summary)
    throw new MediaError('CORRUPT_FILE', `the audio stream could not be measured: ${lastLine(log.tail)}`);

  const data = peaks.finish(WAVEFORM_SAMPLE_RATE);
  const json = await deps.artifacts.write(input.jobId, WAVEFORM_ARTIFACT, JSON.stringify(data));
  const png = await deps.artifacts.write(input.jobId, WAVEFORM_PNG_ARTIFACT, await waveformPng(data));
  const waveformResult: Waveform = {
    ...json,
    pngUrl: png.url,
    channels: data.channels,
    sampleRate: data.sample_rate,
    samplesPerPixel: data.samples_per_pixel,
    length: data.length,
    durationSec: round(heardSec, 3),
  };
  const loudness: Loudness = {
    integratedLufs: reading.integratedLufs,
    loudnessRangeLu: reading.loudnessRangeLu,
    truePeakDbtp: reading.truePeakDbtp,
    silenceShare: round(reading.silenceSec / heardSec, 3),
    silenceSec: round(reading.silenceSec, 2),
    silence: { method: 'silencedetect', ...SILENCE },
  };
  return {
    status: 'succeeded',
    results: {
      waveform: waveformResult,
      loudness,
      ...(audio && { audio: { ...audio, format: 'mp3', durationSec: meta.durationSec ?? null } }),
    },
  };
};

class NoSamples extends Error {}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
