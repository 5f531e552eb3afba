/**
 * Transcription by an OpenAI-compatible server: the recording re-encoded to mono MP3 and cut into overlapping windows
 * under the upload limit, sent a few at a time, and the answers (untrusted) merged into one timed transcript.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type OpenAI from 'openai';
import { toFile } from 'openai';
import { MediaError } from '../../lib/errors.js';
import { safeText } from '../../lib/text.js';
import type { Usage } from '../../lib/types.js';
import { runTool, ToolError } from '../../lib/tools.js';
import { mapLimit, mergeChunkTranscripts, planAudioWindows, type ChunkTranscript } from '../chunking.js';
import {
  emptyUsage,
  type CallOptions,
  type SpeechInput,
  type SpeechModel,
  type SpeechResult,
  type TranscriptSegment,
} from '../types.js';
import { addTokens, callProvider, languageCode, PROVIDER, type ProviderContext } from './provider.js';

export const DEFAULT_AUDIO_CHUNK_SEC = 600;
const AUDIO_OVERLAP_SEC = 1.5;
/** The transcription API takes files up to 25 MB; stay under it with room for the multipart envelope. */
const UPLOAD_LIMIT_BYTES = 24 * 1024 * 1024;
/** Chunks are re-encoded at a known bitrate, so their size follows from their length. */
const CHUNK_BITRATE_KBPS = 64;
/** Segments kept from one transcription answer, and characters of each. */
const MAX_SEGMENTS_PER_CHUNK = 5_000;
const MAX_SEGMENT_CHARS = 2_000;
const AUDIO_TYPES: Record<string, string> = {
  '.mp3': 'audio/mpeg',
  '.wav': 'audio/wav',
  '.m4a': 'audio/mp4',
  '.mp4': 'audio/mp4',
  '.ogg': 'audio/ogg',
  '.oga': 'audio/ogg',
  '.webm': 'audio/webm',
  '.flac': 'audio/flac',
};

export interface SpeechDeps {
  client: OpenAI;
  ctx: ProviderContext;
  ffmpeg: string;
  maxAudioChunkSec: number;
  maxConcurrency: number;
}

interface ChunkAnswer {
  transcript: ChunkTranscript;
  language: string | null;
  durationSec: number | null;
}

export function createSpeechModel(deps: SpeechDeps): SpeechModel {
  return {
    provider: PROVIDER,
    model: deps.ctx.model,
    transcribe: (input: SpeechInput, { signal }: CallOptions): Promise<SpeechResult> => transcribe(input, signal, deps),
  };
}

async function transcribe(input: SpeechInput, signal: AbortSignal, deps: SpeechDeps): Promise<SpeechResult> {
  const usage = emptyUsage();
  const size = (await fs.stat(input.audioPath)).size;
  const inputFormat = input.inputFormat ?? null;
  const duration = input.durationSec ?? (await audioDuration(deps.ffmpeg, input.audioPath, inputFormat, signal));
  // Re-encoded chunks at a fixed bitrate: a window's size follows from its length.
  const sizeLimitedSec = Math.floor((UPLOAD_LIMIT_BYTES * 8) / (CHUNK_BITRATE_KBPS * 1000)) - 2 * AUDIO_OVERLAP_SEC;
  const windowSec = Math.min(deps.maxAudioChunkSec, sizeLimitedSec);
  const whole = size <= UPLOAD_LIMIT_BYTES && (duration === null || duration <= windowSec + AUDIO_OVERLAP_SEC);
  if (!whole && duration === null) {
    throw new MediaError('CORRUPT_FILE', 'the audio is too large to send at once and its duration cannot be read');
  }
  const windows =
    whole || duration === null
      ? [{ index: 0, start: 0, end: duration ?? 0 }]
      : planAudioWindows(duration, windowSec, AUDIO_OVERLAP_SEC);

  const language = input.language ?? null;
  let answers: ChunkAnswer[];
  // Always re-encoded to mono MP3 under a neutral name: every server takes it (an .opus or an audio-only .mkv would
  // be refused as it is), and neither the producer's file name nor its tags go to the provider.
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mo-openai-audio-'));
  try {
    answers = await mapLimit(windows, deps.maxConcurrency, signal, async (w, i, sig) => {
      const file = path.join(dir, `chunk-${String(i).padStart(4, '0')}.mp3`);
      const length = whole && duration === null ? null : w.end - w.start;
      await cutAudio(deps.ffmpeg, input.audioPath, file, w.start, length, inputFormat, sig);
      const data = await fs.readFile(file);
      await fs.rm(file, { force: true });
      return transcribeChunk(data, 'audio.mp3', w, language, sig, deps, usage);
    });
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }

  const reportedSec = answers.reduce((n, a) => n + (a.durationSec ?? 0), 0);
  const total = duration ?? (reportedSec > 0 ? reportedSec : null);
  const timeline = total ?? Infinity;
  const transcripts = answers.map((a) => {
    // The single-file case learns its length from the answer when it was not known.
    if (a.transcript.window.end === 0 && a.durationSec) a.transcript.window.end = a.durationSec;
    return a.transcript;
  });
  const segments = mergeChunkTranscripts(transcripts, AUDIO_OVERLAP_SEC, timeline);
  const counted = new Map<string, number>();
  for (const a of answers) if (a.language) counted.set(a.language, (counted.get(a.language) ?? 0) + 1);
  const detected = [...counted.entries()].sort((x, y) => y[1] - x[1])[0]?.[0] ?? null;
  return {
    provider: PROVIDER,
    model: deps.ctx.model,
    usage,
    text: segments.map((s) => s.text).join(' '),
    language: detected ?? language,
    durationSec: total,
    segments,
    chunks: windows.length,
    quality: 'standard',
  };
}

async function transcribeChunk(
  data: Buffer,
  name: string,
  window: { index: number; start: number; end: number },
  language: string | null,
  signal: AbortSignal,
  deps: SpeechDeps,
  usage: Usage,
): Promise<ChunkAnswer> {
  const res: unknown = await callProvider(deps.ctx, signal, usage, async (attemptSignal) =>
    deps.client.audio.transcriptions.create(
      {
        file: await toFile(data, name, {
          type: AUDIO_TYPES[path.extname(name).toLowerCase()] ?? 'application/octet-stream',
        }),
        model: deps.ctx.model,
        response_format: 'verbose_json',
        timestamp_granularities: ['segment'],
        ...(language ? { language } : {}),
      },
      { signal: attemptSignal },
    ),
  );
  return readTranscription(res, window, usage);
}

/** The server's answer, untrusted: verbose_json with segments, plain `{ text }`, or a bare string. */
function readTranscription(res: unknown, window: ChunkTranscript['window'], usage: Usage): ChunkAnswer {
  const body = (typeof res === 'string' ? { text: res } : (res ?? {})) as Record<string, unknown>;
  const text =
    typeof body.text === 'string'
      ? safeText(body.text)
          .trim()
          .slice(0, MAX_SEGMENT_CHARS * 50)
      : '';
  const durationSec = typeof body.duration === 'number' && Number.isFinite(body.duration) ? body.duration : null;
  let segments: TranscriptSegment[] | null = null;
  if (Array.isArray(body.segments)) {
    segments = (body.segments as Record<string, unknown>[])
      .slice(0, MAX_SEGMENTS_PER_CHUNK)
      .filter(
        (s) =>
          typeof s.start === 'number' &&
          typeof s.end === 'number' &&
          Number.isFinite(s.start) &&
          Number.isFinite(s.end) &&
          typeof s.text === 'string',
      )
      .map((s) => ({
        start: Math.max(0, s.start as number),
        end: Math.max(0, s.end as number),
        text: safeText(s.text as string).slice(0, MAX_SEGMENT_CHARS),
      }))
      .sort((a, b) => a.start - b.start);
    if (segments.length === 0 && text) segments = null;
  }
  const reported = body.usage as
    { type?: string; input_tokens?: unknown; output_tokens?: unknown; total_tokens?: unknown } | undefined;
  if (reported && typeof reported === 'object')
    addTokens(usage, reported.input_tokens, reported.output_tokens, reported.total_tokens);
  return { transcript: { window: { ...window }, segments, text }, language: languageCode(body.language), durationSec };
}

function cutAudio(
  ffmpeg: string,
  input: string,
  output: string,
  startSec: number,
  lengthSec: number | null,
  inputFormat: string | null,
  signal: AbortSignal,
): Promise<Buffer> {
  // -ss before -i seeks by the container index: quick on long files, exact enough with the overlap.
  return runTool(
    ffmpeg,
    [
      '-nostdin',
      '-hide_banner',
      '-v',
      'error',
      '-ss',
      startSec.toFixed(3),
      ...(lengthSec === null ? [] : ['-t', lengthSec.toFixed(3)]),
      // Only the file itself, opened as what it was validated as (a playlist could name other files).
      ...['-protocol_whitelist', 'file'],
      ...(inputFormat ? ['-f', inputFormat] : []),
      '-i',
      input,
      '-vn',
      '-ac',
      '1',
      '-ar',
      '16000',
      '-c:a',
      'libmp3lame',
      '-compression_level',
      '7',
      '-b:a',
      `${CHUNK_BITRATE_KBPS}k`,
      '-y',
      output,
    ],
    { timeoutMs: 120_000, signal },
  );
}

/** The duration ffmpeg reads from the header (`ffmpeg -i` without an output exits 1 after printing it). */
async function audioDuration(
  ffmpeg: string,
  file: string,
  inputFormat: string | null,
  signal: AbortSignal,
): Promise<number | null> {
  let stderr = '';
  try {
    const format = inputFormat ? ['-f', inputFormat] : [];
    await runTool(ffmpeg, ['-nostdin', '-hide_banner', '-protocol_whitelist', 'file', ...format, '-i', file], {
      timeoutMs: 30_000,
      signal,
    });
  } catch (err) {
    if (!(err instanceof ToolError)) throw err;
    stderr = err.stderr;
  }
  const m = /Duration:\s*(\d+):(\d{2}):(\d{2}(?:\.\d+)?)/.exec(stderr);
  if (!m) return null;
  const seconds = Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]);
  return Number.isFinite(seconds) && seconds > 0 ? seconds : null;
}
