/**
 * posterFrame: one representative frame of the video (ffmpeg's `thumbnail` filter picks the most typical frame of a
 * batch, a little way in to miss fades from black), then the same thumbnail code as images.
 */
import { MediaError } from '../lib/errors.js';
import { mediaInput } from '../lib/media-types.js';
import { lastLine, runTool, ToolError } from '../lib/tools.js';
import type { StepFn } from './deps.js';
import { thumbnailsFrom } from './generate-thumbnails.js';

export const posterFrame: StepFn = async (input, deps, ctx) => {
  const duration = input.results.metadata?.durationSec ?? 0;
  const seek = duration > 3 ? Math.min(duration * 0.1, 15) : 0;
  const frame = async (withSeek: boolean): Promise<Buffer> => {
    const args = ['-v', 'error', '-nostdin'];
    if (withSeek && seek > 0) args.push('-ss', seek.toFixed(2));
    args.push(...mediaInput(input.file.path, input.fileInfo?.ext, 'ffmpeg'));
    args.push('-map', '0:V:0', '-vf', 'thumbnail=24', '-frames:v', '1');
    args.push('-f', 'image2pipe', '-c:v', 'png', 'pipe:1');
    return runTool(deps.tools.ffmpeg, args, { timeoutMs: 120_000, signal: ctx.signal });
  };
  let png: Buffer;
  try {
    png = await frame(true);
    // Seeking can land past the last keyframe of an oddly muxed file: fall back to the start.
    if (png.length === 0) png = await frame(false);
  } catch (err) {
    if (err instanceof ToolError)
      throw new MediaError('CORRUPT_FILE', `no frame could be decoded: ${lastLine(err.stderr)}`);
    throw err;
  }
  if (png.length === 0) throw new MediaError('CORRUPT_FILE', 'the video has no decodable frame');
  return thumbnailsFrom(png, input, deps);
};
