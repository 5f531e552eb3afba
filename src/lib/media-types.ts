/**
 * The accepted formats, decided from the bytes (file-type), never from the name. Audio/video containers are only
 * a first guess here: validate settles video vs audio from the streams ffprobe finds.
 */
import type { FileType } from './types.js';

export interface Detected {
  ext: string;
  mime: string;
  kind: FileType;
}

const KIND_BY_EXT: Record<string, FileType> = {
  jpg: 'image',
  png: 'image',
  webp: 'image',
  gif: 'image',
  avif: 'image',
  tif: 'image',
  heic: 'image',
  heif: 'image',
  mp4: 'video',
  m4v: 'video',
  mov: 'video',
  qt: 'video',
  webm: 'video',
  mkv: 'video',
  avi: 'video',
  '3gp': 'video',
  '3g2': 'video',
  mpg: 'video',
  mts: 'video',
  ts: 'video',
  flv: 'video',
  f4v: 'video',
  ogv: 'video',
  mp3: 'audio',
  wav: 'audio',
  m4a: 'audio',
  aac: 'audio',
  ogg: 'audio',
  oga: 'audio',
  opus: 'audio',
  flac: 'audio',
  pdf: 'pdf',
};

/** Maps a file-type result to the kind of job it starts, or null when the format is not accepted. */
export function classify(ft: { ext: string; mime: string } | undefined): Detected | null {
  if (!ft) return null;
  const kind = KIND_BY_EXT[ft.ext];
  return kind ? { ext: ft.ext, mime: ft.mime, kind } : null;
}

export const ACCEPTED_FORMATS = Object.keys(KIND_BY_EXT);

/** ffmpeg's demuxer for each accepted audio/video format. */
const DEMUXERS: Record<string, string> = {
  mp4: 'mov',
  m4v: 'mov',
  mov: 'mov',
  qt: 'mov',
  '3gp': 'mov',
  '3g2': 'mov',
  m4a: 'mov',
  f4v: 'mov',
  webm: 'matroska',
  mkv: 'matroska',
  avi: 'avi',
  mpg: 'mpeg',
  mts: 'mpegts',
  ts: 'mpegts',
  flv: 'flv',
  ogv: 'ogg',
  ogg: 'ogg',
  oga: 'ogg',
  opus: 'ogg',
  mp3: 'mp3',
  wav: 'wav',
  aac: 'aac',
  flac: 'flac',
};

export function demuxerFor(ext: string | null | undefined): string | null {
  return (ext && DEMUXERS[ext]) || null;
}

/**
 * How ffmpeg and ffprobe open a producer's file: with the demuxer its bytes were validated as (never one ffmpeg
 * guesses: a playlist or concat list could point it at other files) and only the `file` protocol, for the file
 * itself. `-i` is added for ffmpeg; ffprobe takes the file after `--`.
 */
export function mediaInput(file: string, ext: string | null | undefined, tool: 'ffmpeg' | 'ffprobe'): string[] {
  const demuxer = demuxerFor(ext);
  const pinned = ['-protocol_whitelist', 'file', ...(demuxer ? ['-f', demuxer] : [])];
  return tool === 'ffmpeg' ? [...pinned, '-i', file] : [...pinned, '--', file];
}
