/** ffprobe as typed data: container, duration and streams of an audio or video file. */
import { MediaError } from './errors.js';
import { mediaInput } from './media-types.js';
import { runTool, ToolError, lastLine } from './tools.js';
import type { StreamInfo } from './types.js';

export interface ProbeResult {
  container: string;
  durationSec: number | null;
  bitRate: number | null;
  tags: Record<string, string>;
  streams: StreamInfo[];
}

interface RawStream {
  index: number;
  codec_type?: string;
  codec_name?: string;
  width?: number;
  height?: number;
  avg_frame_rate?: string;
  r_frame_rate?: string;
  pix_fmt?: string;
  sample_rate?: string;
  channels?: number;
  duration?: string;
  tags?: Record<string, string>;
  disposition?: Record<string, number>;
  side_data_list?: { rotation?: number }[];
}

interface RawProbe {
  format?: { format_name?: string; duration?: string; bit_rate?: string; tags?: Record<string, string> };
  streams?: RawStream[];
}

const num = (v: string | number | undefined): number | null => {
  const n = typeof v === 'number' ? v : Number.parseFloat(v ?? '');
  return Number.isFinite(n) ? n : null;
};

function fps(rate: string | undefined): number | null {
  if (!rate) return null;
  const [a, b] = rate.split('/').map(Number);
  if (!a || !b) return null;
  return Math.round((a / b) * 100) / 100;
}

function lowerKeys(tags: Record<string, string> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(tags ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
}

/** Runs ffprobe; a file it cannot read is CORRUPT_FILE (the type was already recognised from its bytes). */
export async function probeMedia(
  ffprobe: string,
  file: string,
  opts: { timeoutMs: number; signal?: AbortSignal; ext?: string | null },
): Promise<ProbeResult> {
  let raw: RawProbe;
  try {
    const out = await runTool(
      ffprobe,
      [
        '-v',
        'error',
        '-print_format',
        'json',
        '-show_format',
        '-show_streams',
        ...mediaInput(file, opts.ext, 'ffprobe'),
      ],
      opts,
    );
    raw = JSON.parse(out.toString('utf8')) as RawProbe;
  } catch (err) {
    if (err instanceof ToolError) {
      throw new MediaError(
        'CORRUPT_FILE',
        `the media container cannot be read: ${lastLine(err.stderr) || err.message}`,
      );
    }
    throw err;
  }
  const streams: StreamInfo[] = (raw.streams ?? []).map((s) => {
    const tags = lowerKeys(s.tags);
    const type = (
      ['video', 'audio', 'subtitle', 'attachment'].includes(s.codec_type ?? '') ? s.codec_type : 'data'
    ) as StreamInfo['type'];
    const info: StreamInfo = { index: s.index, type, codec: s.codec_name ?? null, language: tags.language ?? null };
    if (type === 'video') {
      info.width = s.width ?? 0;
      info.height = s.height ?? 0;
      info.fps = fps(s.avg_frame_rate) ?? fps(s.r_frame_rate);
      const rotation =
        num(tags.rotate ?? undefined) ?? s.side_data_list?.find((d) => d.rotation !== undefined)?.rotation;
      if (rotation) info.rotation = rotation;
      info.attachedPicture = s.disposition?.attached_pic === 1;
      if (s.pix_fmt) info.pixelFormat = s.pix_fmt;
    }
    if (type === 'audio') {
      info.sampleRate = num(s.sample_rate) ?? 0;
      info.channels = s.channels ?? 0;
    }
    // Matroska keeps a stream's length in its DURATION tag ("00:00:04.000000000").
    info.durationSec = num(s.duration) ?? clockSeconds(tags.duration);
    return info;
  });
  const tags = lowerKeys(raw.format?.tags);
  // The media's length is its longest sound or picture track: a subtitle track (which the producer writes) can claim
  // hours past the end and would stretch the container's duration with it.
  const media = streams.filter((s) => (s.type === 'audio' || s.type === 'video') && !s.attachedPicture);
  const mediaSec = media.reduce<number | null>(
    (max, s) => (s.durationSec === null || s.durationSec === undefined ? max : Math.max(max ?? 0, s.durationSec)),
    null,
  );
  const containerSec = num(raw.format?.duration);
  return {
    container: raw.format?.format_name ?? 'unknown',
    durationSec:
      mediaSec !== null && containerSec !== null ? Math.min(mediaSec, containerSec) : (mediaSec ?? containerSec),
    bitRate: num(raw.format?.bit_rate),
    tags,
    streams,
  };
}

/** `HH:MM:SS.fraction` as seconds. */
function clockSeconds(v: string | undefined): number | null {
  const m = /^(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$/.exec(v?.trim() ?? '');
  return m ? Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]) : null;
}

/** A real picture track: cover art embedded in an audio file does not make it a video. */
export function videoStreams(p: ProbeResult): StreamInfo[] {
  return p.streams.filter((s) => s.type === 'video' && !s.attachedPicture);
}

export function audioStreams(p: ProbeResult): StreamInfo[] {
  return p.streams.filter((s) => s.type === 'audio');
}

export function subtitleStreams(p: ProbeResult): StreamInfo[] {
  return p.streams.filter((s) => s.type === 'subtitle');
}

/**
 * How many seconds of the media can really be read: every packet is read (none decoded: at the disk's pace) and the
 * time of the last one is taken. A file cut short (an interrupted upload) holds less than its header declares. Null
 * when ffmpeg could not say (it failed or ran out of time): nothing is then known to be missing.
 */
export async function readableSeconds(
  ffmpeg: string,
  file: string,
  opts: { timeoutMs: number; signal?: AbortSignal; ext?: string | null },
): Promise<number | null> {
  let out: Buffer;
  try {
    out = await runTool(
      ffmpeg,
      [
        ...['-v', 'error', '-nostdin', ...mediaInput(file, opts.ext, 'ffmpeg')],
        ...['-map', '0:V?', '-map', '0:a?', '-c', 'copy', '-f', 'null', '-', '-progress', 'pipe:1', '-nostats'],
      ],
      { ...opts, maxStdoutBytes: 16 * 1024 * 1024 },
    );
  } catch (err) {
    if (err instanceof ToolError || (err instanceof MediaError && err.code === 'TIMEOUT')) return null;
    throw err;
  }
  const times = [...out.toString('latin1').matchAll(/^out_time_us=(\d+)$/gm)];
  const last = times.at(-1)?.[1];
  return last === undefined ? null : Number(last) / 1e6;
}

/** Containers that are one stream with no index: the length they report is no length (ffmpeg guesses or gives none). */
export const ELEMENTARY_FORMATS: ReadonlySet<string> = new Set(['mpegvideo', 'h264', 'hevc']);
