/**
 * extractAudio: the first audio track as speech-friendly MP3 (mono, 16 kHz, 32 kb/s: an hour fits the 25 MB limit
 * of hosted speech APIs). A video without sound is `skipped`, and so is the rest of its audio chain unless a
 * subtitle track can still give a transcript.
 */
import { MediaError } from '../lib/errors.js';
import { mediaInput } from '../lib/media-types.js';
import { lastLine, runTool, ToolError } from '../lib/tools.js';
import type { StepFn } from './deps.js';

export const AUDIO_ARTIFACT = 'audio.mp3';

export const extractAudio: StepFn = async (input, deps, ctx) => {
  const meta = input.results.metadata;
  if (!meta?.hasAudio) {
    const subtitles = meta?.subtitleTracks ?? 0;
    return { status: 'skipped', reason: 'the video has no audio stream', endsChain: subtitles === 0 };
  }
  const duration = meta.durationSec ?? 0;
  let ref;
  try {
    ref = await deps.artifacts.produce(input.jobId, AUDIO_ARTIFACT, async (out) => {
      await runTool(
        deps.tools.ffmpeg,
        [
          ...['-v', 'error', '-nostdin', '-y', ...mediaInput(input.file.path, input.fileInfo?.ext, 'ffmpeg')],
          ...['-map', '0:a:0', '-vn', '-ac', '1', '-ar', '16000', '-c:a', 'libmp3lame', '-b:a', '32k', out],
        ],
        // Generous for long recordings: encoding runs at well over 50x real time.
        { timeoutMs: Math.max(120_000, duration * 1000), signal: ctx.signal },
      );
    });
  } catch (err) {
    if (err instanceof ToolError)
      throw new MediaError('CORRUPT_FILE', `the audio track cannot be decoded: ${lastLine(err.stderr)}`);
    throw err;
  }
  return { status: 'succeeded', results: { audio: { ...ref, format: 'mp3', durationSec: meta.durationSec ?? null } } };
};
