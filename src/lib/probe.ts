/** ffprobe as typed data: container, duration and streams of an audio or video file. */
import { MediaError } from './errors.js';
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
  opts: { timeoutMs: number; signal?: AbortSignal },
): Promise<ProbeResult> {
  let raw: RawProbe;
  try {
    const out = await runTool(
      ffprobe,
      ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', '--', file],
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
    }
    if (type === 'audio') {
      info.sampleRate = num(s.sample_rate) ?? 0;
      info.channels = s.channels ?? 0;
    }
    info.durationSec = num(s.duration);
    return info;
  });
  const tags = lowerKeys(raw.format?.tags);
  return {
    container: raw.format?.format_name ?? 'unknown',
    durationSec: num(raw.format?.duration),
    bitRate: num(raw.format?.bit_rate),
    tags,
    streams,
  };
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
