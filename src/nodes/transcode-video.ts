/**
 * transcodeVideo: a rendition every browser plays, `video.mp4`: H.264 (yuv420p, High profile) and AAC, its index
 * first (`-movflags +faststart`), turned upright, the shorter side at most VIDEO_MAX_HEIGHT (never enlarged), at most
 * 30 frames a second, and none of the source's metadata (GPS, device, names). Policy VIDEO_TRANSCODE (or the job's
 * `video.transcode`): `required` leaves a source that already plays everywhere as it is (skipped, with the reason), or
 * copies its streams without their metadata when it carries a location; `always`; `never`.
 *
 * ffmpeg writes through the artifact store: the file appears when ffmpeg has finished and the step succeeded; a
 * failed, stopped or killed run leaves nothing visible, and the next run starts from the beginning.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { VideoTranscodePolicy } from '../config.js';
import { MediaError } from '../lib/errors.js';
import { mediaInput } from '../lib/media-types.js';
import { hasFastStart } from '../lib/mp4.js';
import { probeMedia, type ProbeResult } from '../lib/probe.js';
import { lastLine, runTool, ToolError } from '../lib/tools.js';
import type { Metadata, Rendition, StreamInfo } from '../lib/types.js';
import type { Deps, StepContext, StepFn, StepInput } from './deps.js';

export const RENDITION_ARTIFACT = 'video.mp4';
/** Frame rates above this are halved (or thinned) to it: browsers and phones play 30 fps everywhere. */
export const MAX_FPS = 30;
const AUDIO_BITRATE = '128k';
export const HLS_PLAYLIST = 'hls.m3u8';
/** Seconds per HLS segment (cut at keyframes, so a segment may run longer). */
const HLS_SEGMENT_SEC = 6;
/** Containers a browser's `<video>` plays H.264/AAC from (the ISO family, by the type validate found). */
const WEB_CONTAINERS = ['mp4', 'm4v'];
/** Format tags that place or identify the recording: a source carrying one is not served as it is. */
const PRIVATE_TAG = /location|gps|xyz|make|model|serial|author|artist|comment|encoder-settings/i;

export interface TranscodeSettings {
  policy: VideoTranscodePolicy;
  maxHeight: number;
  crf: number;
  preset: string;
}

/** The job's choices on top of the service's (VIDEO_*). */
export function transcodeSettings(input: StepInput, deps: Deps): TranscodeSettings {
  const own = input.instructions?.video;
  return {
    policy: own?.transcode ?? deps.config.video.transcode,
    maxHeight: own?.maxHeight ?? deps.config.video.maxHeight,
    crf: deps.config.video.crf,
    preset: deps.config.video.preset,
  };
}

/** The first picture track that is not cover art. */
export function mainVideoStream(meta: Metadata | undefined): StreamInfo | undefined {
  return meta?.streams?.find((s) => s.type === 'video' && !s.attachedPicture);
}

/** Width and height as shown: a rotation of 90 or 270 degrees swaps them. */
export function displaySize(stream: StreamInfo): { width: number; height: number } {
  const w = stream.width ?? 0;
  const h = stream.height ?? 0;
  return Math.abs(stream.rotation ?? 0) % 180 === 90 ? { width: h, height: w } : { width: w, height: h };
}

/**
 * Why the source needs no rendition of its own (it plays in every browser as it is), or what it lacks: `ready` is
 * true only for H.264 yuv420p (and AAC or no sound) in an MP4 with its index first, within `maxHeight` and 30 fps.
 */
export async function webReadiness(
  file: string,
  ext: string | undefined,
  meta: Metadata,
  maxHeight: number,
): Promise<{ ready: boolean; why: string }> {
  const video = mainVideoStream(meta);
  const audio = meta.streams?.find((s) => s.type === 'audio');
  if (!ext || !WEB_CONTAINERS.includes(ext)) return { ready: false, why: `the container is ${ext ?? 'unknown'}` };
  if (video?.codec !== 'h264') return { ready: false, why: `the video codec is ${video?.codec ?? 'unknown'}` };
  if (video.pixelFormat !== 'yuv420p') return { ready: false, why: `the pixels are ${video.pixelFormat ?? 'unknown'}` };
  if (audio && audio.codec !== 'aac') return { ready: false, why: `the audio codec is ${audio.codec ?? 'unknown'}` };
  const { width, height } = displaySize(video);
  if (Math.min(width, height) > maxHeight) return { ready: false, why: `it is larger than ${maxHeight}p` };
  if ((video.fps ?? 0) > MAX_FPS + 0.5) return { ready: false, why: `it runs at ${video.fps} fps` };
  if (!(await hasFastStart(file))) return { ready: false, why: 'its index (moov) comes after the media data' };
  return { ready: true, why: `it is already H.264/AAC MP4 with faststart within ${maxHeight}p` };
}

/**
 * The video filters: scale the shorter side down to `maxHeight` (never up; even sizes, as yuv420p needs), thin the
 * frame rate to 30 when it is higher, and convert to yuv420p. ffmpeg turns the picture upright before these run.
 */
export function videoFilters(stream: StreamInfo, maxHeight: number): string {
  const { width, height } = displaySize(stream);
  const short = Math.min(width, height);
  const target = Math.min(maxHeight, short > 0 ? short : maxHeight);
  const even = (n: number): number => Math.max(2, Math.floor(n / 2) * 2);
  const filters = [
    width >= height ? `scale=-2:${even(target)}:flags=bicubic` : `scale=${even(target)}:-2:flags=bicubic`,
  ];
  if ((stream.fps ?? 0) > MAX_FPS + 0.5) filters.push(`fps=${MAX_FPS}`);
  filters.push('format=yuv420p');
  return filters.join(',');
}

/** ffmpeg's `-progress` lines: the position reached (out_time_us, or out_time_ms which is microseconds too). */
export function progressReader(durationSec: number, report: (fraction: number) => void): (chunk: Buffer) => void {
  let tail = '';
  return (chunk) => {
    const lines = (tail + chunk.toString('latin1')).split('\n');
    tail = lines.pop() ?? '';
    for (const line of lines) {
      const m = /^out_time_(?:us|ms)=(\d+)/.exec(line);
      if (m && durationSec > 0) report(Number(m[1]) / 1e6 / durationSec);
    }
  };
}

export const transcodeVideo: StepFn = async (input, deps, ctx) => {
  const meta = input.results.metadata;
  const settings = transcodeSettings(input, deps);
  if (settings.policy === 'never') {
    const who = input.instructions?.video?.transcode ? "the job's instructions say" : 'VIDEO_TRANSCODE is';
    return { status: 'skipped', reason: `no rendition: ${who} never` };
  }
  const video = mainVideoStream(meta);
  if (!meta || !video) return { status: 'skipped', reason: 'the file has no video stream' };
  let mode: Rendition['mode'] = 'transcode';
  if (settings.policy === 'required') {
    const readiness = await webReadiness(input.file.path, input.fileInfo?.ext, meta, settings.maxHeight);
    if (readiness.ready) {
      const tags = await formatTags(input, deps, ctx);
      const identifying = Object.keys(tags).filter((k) => PRIVATE_TAG.test(k));
      if (identifying.length === 0)
        return { status: 'skipped', reason: `no rendition required: ${readiness.why}; the original plays as it is` };
      // Playable as it is, but it says where it was recorded: the same streams, without the metadata.
      mode = 'remux';
    }
  }
  const durationSec = meta.durationSec ?? 0;
  const hasAudio = meta.streams?.some((s) => s.type === 'audio') ?? false;
  const args = ['-v', 'error', '-nostdin', '-y', '-progress', 'pipe:1', '-nostats'];
  args.push(...mediaInput(input.file.path, input.fileInfo?.ext, 'ffmpeg'));
  args.push('-map', '0:V:0', '-map', '0:a:0?', '-sn', '-dn');
  if (mode === 'remux') args.push('-c', 'copy');
  else {
    args.push('-vf', videoFilters(video, settings.maxHeight));
    args.push(...['-c:v', 'libx264', '-preset', settings.preset, '-crf', String(settings.crf)]);
    args.push(...['-profile:v', 'high', '-pix_fmt', 'yuv420p']);
    if (hasAudio) {
      const channels = meta.streams?.find((s) => s.type === 'audio')?.channels ?? 2;
      args.push('-c:a', 'aac', '-b:a', AUDIO_BITRATE, ...(channels > 2 ? ['-ac', '2'] : []));
    }
  }
  // Nothing of the source's own description: its tags and chapters. A copied stream keeps its own tags (its rotation
  // among them); an encoded one has none (the rotation is applied to the picture).
  args.push('-map_metadata', '-1', '-map_chapters', '-1');
  if (mode === 'transcode') args.push('-map_metadata:s:v', '-1', '-map_metadata:s:a', '-1');
  args.push(...['-max_muxing_queue_size', '4096', '-movflags', '+faststart', '-f', 'mp4']);
  let ref;
  let made: ProbeResult | undefined;
  let hlsDir: string | undefined;
  try {
    ref = await deps.artifacts.produce(input.jobId, RENDITION_ARTIFACT, async (out) => {
      ctx.progress?.(0);
      await runTool(deps.tools.ffmpeg, [...args, out], {
        // The step's own time limit (which grows with the duration) stops it; this only backs it up.
        timeoutMs: 24 * 3_600_000,
        signal: ctx.signal,
        onStdout: progressReader(durationSec, (f) => ctx.progress?.(f)),
      });
      made = await probeMedia(deps.tools.ffprobe, out, { timeoutMs: 60_000, signal: ctx.signal, ext: 'mp4' });
      if (input.instructions?.video?.hls) hlsDir = await packageHls(out, deps, ctx);
    });
  } catch (err) {
    if (hlsDir) await fs.rm(hlsDir, { recursive: true, force: true });
    if (err instanceof ToolError)
      throw new MediaError('CORRUPT_FILE', `the video cannot be transcoded: ${lastLine(err.stderr) || err.message}`);
    throw err;
  }
  const result = rendition(ref, made!, mode, settings);
  if (hlsDir) result.hls = await storeHls(hlsDir, input.jobId, deps);
  return { status: 'succeeded', results: { video: result } };
};

function rendition(
  ref: { name: string; url: string; bytes: number },
  out: ProbeResult,
  mode: Rendition['mode'],
  settings: TranscodeSettings,
): Rendition {
  const v = out.streams.find((s) => s.type === 'video');
  const a = out.streams.find((s) => s.type === 'audio');
  return {
    ...ref,
    format: 'mp4',
    mode,
    videoCodec: v?.codec ?? 'h264',
    audioCodec: a?.codec ?? null,
    width: v?.width ?? 0,
    height: v?.height ?? 0,
    fps: v?.fps ?? null,
    durationSec: out.durationSec,
    ...(mode === 'transcode' && { preset: settings.preset, crf: settings.crf }),
  };
}

/** The container's own tags (lower-cased names), read again: the job's metadata keeps only what it shows. */
async function formatTags(input: StepInput, deps: Deps, ctx: StepContext): Promise<Record<string, string>> {
  const probe = await probeMedia(deps.tools.ffprobe, input.file.path, {
    timeoutMs: 60_000,
    signal: ctx.signal,
    ext: input.fileInfo?.ext,
  });
  return probe.tags;
}

/**
 * The rendition cut into an HLS VOD playlist of fMP4 segments (`hls.m3u8`, `hls-init.mp4`, `hls-0.m4s`…), streams
 * copied, in a folder of its own outside the job's: the caller stores the files as artifacts and deletes the folder.
 */
async function packageHls(rendition: string, deps: Deps, ctx: StepContext): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mo-hls-'));
  try {
    await runTool(
      deps.tools.ffmpeg,
      [
        ...['-v', 'error', '-nostdin', '-y', '-protocol_whitelist', 'file', '-i', rendition, '-map', '0', '-c', 'copy'],
        ...['-f', 'hls', '-hls_time', String(HLS_SEGMENT_SEC), '-hls_playlist_type', 'vod'],
        ...['-hls_segment_type', 'fmp4', '-hls_fmp4_init_filename', 'hls-init.mp4'],
        ...['-hls_segment_filename', path.join(dir, 'hls-%d.m4s'), path.join(dir, HLS_PLAYLIST)],
      ],
      { timeoutMs: 24 * 3_600_000, signal: ctx.signal },
    );
    return dir;
  } catch (err) {
    await fs.rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** The HLS files as the job's artifacts, the playlist last (it names the others); the folder is deleted. */
async function storeHls(dir: string, jobId: string, deps: Deps): Promise<{ url: string; segments: number }> {
  try {
    const names = (await fs.readdir(dir)).filter((n) => /^hls-(init\.mp4|\d+\.m4s)$/.test(n));
    for (const name of names) await deps.artifacts.write(jobId, name, await fs.readFile(path.join(dir, name)));
    const playlist = await deps.artifacts.write(jobId, HLS_PLAYLIST, await fs.readFile(path.join(dir, HLS_PLAYLIST)));
    return { url: playlist.url, segments: names.filter((n) => n.endsWith('.m4s')).length };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
