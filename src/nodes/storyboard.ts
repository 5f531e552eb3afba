/**
 * storyboard: scrub previews of a video, the format Video.js, Plyr and Vidstack read. `storyboard.jpg` holds up to 100
 * frames of 160 pixels wide in a grid, taken at an even interval across the duration (at least a second apart);
 * `storyboard.vtt` has one cue per frame whose text is `storyboard.jpg#xywh=x,y,w,h`, the tile to show for that time.
 */
import fs from 'node:fs/promises';
import { MediaError } from '../lib/errors.js';
import { mediaInput } from '../lib/media-types.js';
import { lastLine, runTool, ToolError } from '../lib/tools.js';
import type { Storyboard } from '../lib/types.js';
import type { StepFn } from './deps.js';
import { displaySize, mainVideoStream } from './transcode-video.js';

export const SPRITE_ARTIFACT = 'storyboard.jpg';
export const STORYBOARD_VTT = 'storyboard.vtt';
export const TILE_WIDTH = 160;
export const MAX_TILES = 100;
const MAX_COLUMNS = 10;
/** Frames closer than this show nothing new while scrubbing. */
const MIN_INTERVAL_SEC = 1;

export interface StoryboardLayout {
  tiles: number;
  columns: number;
  rows: number;
  intervalSec: number;
  tileWidth: number;
  tileHeight: number;
}

/** The grid for a video of `durationSec` shown at `width` x `height`. */
export function storyboardLayout(durationSec: number, width: number, height: number): StoryboardLayout {
  const intervalSec = Math.max(MIN_INTERVAL_SEC, Math.ceil((durationSec / MAX_TILES) * 100) / 100);
  // A tile for every interval that starts a quarter second before the end or earlier (the last frames of a file can
  // be a padding of its sound, with no picture).
  const tiles = Math.max(1, Math.min(MAX_TILES, Math.ceil((durationSec - 0.25) / intervalSec)));
  const columns = Math.min(MAX_COLUMNS, tiles);
  // Even heights, at most twice the width (a very tall video's tiles are cropped by nothing: they are just tall).
  const aspect = width > 0 && height > 0 ? height / width : 9 / 16;
  const tileHeight = Math.max(2, Math.round((TILE_WIDTH * Math.min(aspect, 2)) / 2) * 2);
  return { tiles, columns, rows: Math.ceil(tiles / columns), intervalSec, tileWidth: TILE_WIDTH, tileHeight };
}

/** WebVTT time: hh:mm:ss.mmm. */
export function vttTime(sec: number): string {
  const ms = Math.round(sec * 1000);
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = Math.floor((ms % 60_000) / 1000);
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${pad(h)}:${pad(m)}:${pad(s)}.${pad(ms % 1000, 3)}`;
}

/** One cue per tile, the last ending at the end of the video. */
export function storyboardVtt(layout: StoryboardLayout, durationSec: number, sprite = SPRITE_ARTIFACT): string {
  const cues = ['WEBVTT', ''];
  for (let i = 0; i < layout.tiles; i++) {
    const start = i * layout.intervalSec;
    const end = i === layout.tiles - 1 ? Math.max(durationSec, start + 0.001) : (i + 1) * layout.intervalSec;
    const x = (i % layout.columns) * layout.tileWidth;
    const y = Math.floor(i / layout.columns) * layout.tileHeight;
    cues.push(`${vttTime(start)} --> ${vttTime(end)}`);
    cues.push(`${sprite}#xywh=${x},${y},${layout.tileWidth},${layout.tileHeight}`, '');
  }
  return cues.join('\n');
}

export const storyboard: StepFn = async (input, deps, ctx) => {
  const meta = input.results.metadata;
  const video = mainVideoStream(meta);
  if (!meta || !video) return { status: 'skipped', reason: 'the file has no video stream' };
  const durationSec = meta.durationSec ?? 0;
  if (!(durationSec > 0)) return { status: 'skipped', reason: 'the video has no known duration' };
  const { width, height } = displaySize(video);
  const layout = storyboardLayout(durationSec, width, height);
  const { tileWidth: w, tileHeight: h } = layout;
  // Each tile is the frame at the start of its interval; the picture is fitted into the tile, bars where the shape
  // differs. ffmpeg turns the picture upright first. `eof_action=pass`: a video shorter than one interval (a phone's
  // clip of a few frames) still gives its frame, where the fps filter would otherwise drop them all at the end.
  const filters = [
    `fps=1/${layout.intervalSec}:round=down:eof_action=pass`,
    `scale=${w}:${h}:force_original_aspect_ratio=decrease:flags=bicubic`,
    `pad=${w}:${h}:(ow-iw)/2:(oh-ih)/2`,
    `tile=${layout.columns}x${layout.rows}`,
  ].join(',');
  let sprite;
  try {
    sprite = await deps.artifacts.produce(input.jobId, SPRITE_ARTIFACT, async (out) => {
      await runTool(
        deps.tools.ffmpeg,
        [
          ...['-v', 'error', '-nostdin', '-y', ...mediaInput(input.file.path, input.fileInfo?.ext, 'ffmpeg')],
          ...['-map', '0:V:0', '-an', '-sn', '-vf', filters, '-frames:v', '1', '-q:v', '5', '-update', '1', out],
        ],
        { timeoutMs: 24 * 3_600_000, signal: ctx.signal },
      );
      // ffmpeg ends well without writing a frame when it could decode none.
      const written = await fs.stat(out).catch(() => null);
      if (!written?.size) throw new MediaError('CORRUPT_FILE', 'the video has no decodable frame');
    });
  } catch (err) {
    if (err instanceof ToolError)
      throw new MediaError('CORRUPT_FILE', `no storyboard could be made: ${lastLine(err.stderr) || err.message}`);
    throw err;
  }
  const vtt = await deps.artifacts.write(input.jobId, STORYBOARD_VTT, storyboardVtt(layout, durationSec));
  const result: Storyboard = { url: vtt.url, spriteUrl: sprite.url, ...layout };
  return { status: 'succeeded', results: { storyboard: result } };
};
