/**
 * transcribe, offline: a text subtitle track is the transcript (it was written by a person, so it is better than any
 * small model). With neither subtitles nor a speech-to-text provider the step is `skipped` and says so.
 */
import { MediaError } from '../lib/errors.js';
import { excerpt } from '../lib/files.js';
import { lastLine, runTool, ToolError } from '../lib/tools.js';
import type { StepFn } from './deps.js';

export const TRANSCRIPT_ARTIFACT = 'transcript.txt';
export const SUBTITLES_ARTIFACT = 'transcript.srt';

/** Subtitle codecs that hold text; bitmap subtitles (DVD, PGS) would need OCR. */
const TEXT_SUBTITLES = new Set(['subrip', 'srt', 'ass', 'ssa', 'mov_text', 'webvtt', 'text', 'microdvd', 'subviewer']);

export const transcribe: StepFn = async (input, deps, ctx) => {
  const streams = input.results.metadata?.streams ?? [];
  const track = streams.find((s) => s.type === 'subtitle' && TEXT_SUBTITLES.has(s.codec ?? ''));
  if (!track) {
    const hasAudio = input.results.metadata?.hasAudio ?? false;
    return {
      status: 'skipped',
      reason: hasAudio
        ? 'no text subtitle track, and no speech-to-text provider is configured'
        : 'no audio stream and no text subtitle track',
      endsChain: true,
    };
  }
  let srt: string;
  try {
    const out = await runTool(
      deps.tools.ffmpeg,
      ['-v', 'error', '-nostdin', '-i', input.file.path, '-map', `0:${track.index}`, '-f', 'srt', 'pipe:1'],
      { timeoutMs: 60_000, signal: ctx.signal },
    );
    srt = out.toString('utf8');
  } catch (err) {
    if (err instanceof ToolError)
      throw new MediaError('CORRUPT_FILE', `the subtitle track cannot be read: ${lastLine(err.stderr)}`);
    throw err;
  }
  const text = srtToText(srt);
  if (!text) return { status: 'skipped', reason: 'the subtitle track is empty', endsChain: true };
  await deps.artifacts.write(input.jobId, SUBTITLES_ARTIFACT, srt);
  const ref = await deps.artifacts.write(input.jobId, TRANSCRIPT_ARTIFACT, text);
  const short = excerpt(text, 2000);
  return {
    status: 'succeeded',
    results: {
      transcript: {
        provider: 'subtitles',
        source: `subtitle track ${track.index}${track.language && track.language !== 'und' ? ` (${track.language})` : ''}`,
        text: short,
        truncated: short.length < text.replace(/\s+/g, ' ').trim().length,
        chars: text.length,
        url: ref.url,
      },
    },
  };
};

/** The spoken lines of an SRT file: no cue numbers, timings or markup, repeated lines once. */
export function srtToText(srt: string): string {
  const lines: string[] = [];
  for (const block of srt.replace(/\r/g, '').split(/\n{2,}/)) {
    for (const line of block.split('\n')) {
      if (/^\d+$/.test(line.trim()) || line.includes('-->')) continue;
      const clean = line
        .replace(/<[^>]+>/g, '')
        .replace(/\{\\[^}]*\}/g, '')
        .trim();
      if (clean && clean !== lines.at(-1)) lines.push(clean);
    }
  }
  return lines.join('\n');
}
