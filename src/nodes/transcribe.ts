/**
 * transcribe: the words of a recording. A text subtitle track comes first when there is one (a person wrote it, and
 * it costs nothing) unless TRANSCRIBE_PREFER_SUBTITLES=false; else the speech model in `deps.ai` (a provider's
 * transcription endpoint, or offline PocketSphinx) listens to the extracted audio. Artifacts: transcript.txt,
 * transcript.srt, transcript.vtt, and transcript.json (the timed segments summarize builds chapters from).
 */
import type { TranscriptSegment } from '../ai/index.js';
import { MediaError } from '../lib/errors.js';
import { excerpt } from '../lib/files.js';
import { demuxerFor, mediaInput } from '../lib/media-types.js';
import { parseSrt, toSrt, toVtt } from '../lib/subtitles.js';
import { safeText } from '../lib/text.js';
import { lastLine, runTool, ToolError } from '../lib/tools.js';
import type { Transcript } from '../lib/types.js';
import { recordAiUse, type Deps, type StepFn, type StepInput } from './deps.js';
import { AUDIO_ARTIFACT } from './extract-audio.js';

export const TRANSCRIPT_ARTIFACT = 'transcript.txt';
export const SUBTITLES_ARTIFACT = 'transcript.srt';
export const VTT_ARTIFACT = 'transcript.vtt';
export const SEGMENTS_ARTIFACT = 'transcript.json';

/** Segments kept, and characters of each: a subtitle track or a model can send any number. */
const MAX_SEGMENTS = 20_000;
const MAX_SEGMENT_CHARS = 2_000;

/** Subtitle codecs that hold text; bitmap subtitles (DVD, PGS) would need OCR. */
const TEXT_SUBTITLES = new Set(['subrip', 'srt', 'ass', 'ssa', 'mov_text', 'webvtt', 'text', 'microdvd', 'subviewer']);

export const transcribe: StepFn = async (input, deps, ctx) => {
  const meta = input.results.metadata;
  const track = (meta?.streams ?? []).find((s) => s.type === 'subtitle' && TEXT_SUBTITLES.has(s.codec ?? ''));
  const speech = deps.ai.speech;
  const hasAudio = meta?.hasAudio ?? false;
  if (track && (deps.config.ai.preferSubtitles || !speech || !hasAudio)) {
    const srt = await readSubtitles(input, deps, track.index, ctx.signal);
    const segments = bounded(parseSrt(srt), meta?.durationSec ?? null);
    if (segments.length === 0) return { status: 'skipped', reason: 'the subtitle track is empty', endsChain: true };
    const language = track.language && track.language !== 'und' ? track.language : null;
    const transcript = await saveTranscript(input, deps, segments, {
      provider: 'subtitles',
      source: `subtitle track ${track.index}${language ? ` (${language})` : ''}`,
      language,
    });
    return { status: 'succeeded', results: { transcript } };
  }
  if (!hasAudio) return { status: 'skipped', reason: 'no audio stream and no text subtitle track', endsChain: true };
  if (!speech) {
    const why = deps.ai.unavailable.speech ?? 'no speech-to-text is configured';
    return { status: 'skipped', reason: `no text subtitle track, and ${why}`, endsChain: true };
  }
  // A video's audio was extracted as speech-friendly MP3; an audio file is read as it is.
  const extracted = input.results.audio !== undefined;
  const audioPath = extracted ? await deps.artifacts.localPath(input.jobId, AUDIO_ARTIFACT) : input.file.path;
  const heard = await speech.transcribe(
    {
      audioPath,
      durationSec: meta?.durationSec ?? null,
      language: null,
      inputFormat: demuxerFor(extracted ? 'mp3' : input.fileInfo?.ext),
    },
    { signal: ctx.signal },
  );
  await recordAiUse(deps, input, 'transcribe', 'speech', heard);
  const segments = bounded(heard.segments, meta?.durationSec ?? null);
  if (segments.length === 0) return { status: 'skipped', reason: 'no speech was recognized', endsChain: true };
  const transcript = await saveTranscript(input, deps, segments, {
    provider: heard.provider,
    model: heard.model,
    source: 'speech',
    language: heard.language,
    durationSec: heard.durationSec,
    chunks: heard.chunks,
    quality: heard.quality,
    usage: heard.usage,
  });
  return { status: 'succeeded', results: { transcript } };
};

async function readSubtitles(input: StepInput, deps: Deps, index: number, signal: AbortSignal): Promise<string> {
  try {
    const out = await runTool(
      deps.tools.ffmpeg,
      [
        ...['-v', 'error', '-nostdin', ...mediaInput(input.file.path, input.fileInfo?.ext, 'ffmpeg')],
        ...['-map', `0:${index}`, '-f', 'srt', 'pipe:1'],
      ],
      { timeoutMs: 60_000, signal },
    );
    return out.toString('utf8');
  } catch (err) {
    if (err instanceof ToolError)
      throw new MediaError('CORRUPT_FILE', `the subtitle track cannot be read: ${lastLine(err.stderr)}`);
    throw err;
  }
}

/** Writes the four transcript artifacts and describes them for the job document. */
async function saveTranscript(
  input: StepInput,
  deps: Deps,
  segments: TranscriptSegment[],
  about: Omit<Transcript, 'text' | 'truncated' | 'chars' | 'url' | 'srtUrl' | 'vttUrl' | 'segments'>,
): Promise<Transcript> {
  const text = joinLines(segments.map((s) => s.text));
  const srt = await deps.artifacts.write(input.jobId, SUBTITLES_ARTIFACT, toSrt(segments));
  const vtt = await deps.artifacts.write(input.jobId, VTT_ARTIFACT, toVtt(segments));
  await deps.artifacts.write(input.jobId, SEGMENTS_ARTIFACT, JSON.stringify(segments));
  const ref = await deps.artifacts.write(input.jobId, TRANSCRIPT_ARTIFACT, text);
  const short = excerpt(text, 2000);
  return {
    ...about,
    text: short,
    truncated: short.length < text.replace(/\s+/g, ' ').trim().length,
    chars: text.length,
    url: ref.url,
    srtUrl: srt.url,
    vttUrl: vtt.url,
    segments: segments.length,
  };
}

/**
 * Segments as the outside world sent them (a producer's subtitle track, a model's answer), bounded: inside the
 * recording, in order, a limited number of limited length, printable.
 */
function bounded(segments: TranscriptSegment[], durationSec: number | null): TranscriptSegment[] {
  const end = durationSec && durationSec > 0 ? durationSec : Infinity;
  const out: TranscriptSegment[] = [];
  for (const s of segments) {
    if (!Number.isFinite(s.start) || s.start < 0 || s.start > end) continue;
    const text = safeText(s.text).trim().slice(0, MAX_SEGMENT_CHARS);
    if (!text) continue;
    out.push({ start: s.start, end: Math.min(Math.max(s.end, s.start), end), text });
    if (out.length >= MAX_SEGMENTS) break;
  }
  return out.sort((a, b) => a.start - b.start);
}

/** The spoken lines, each once: subtitles repeat a line across cues while it stays on screen. */
function joinLines(texts: string[]): string {
  const lines: string[] = [];
  for (const t of texts)
    for (const line of t.split('\n')) {
      const clean = line.trim();
      if (clean && clean !== lines.at(-1)) lines.push(clean);
    }
  return lines.join('\n');
}
