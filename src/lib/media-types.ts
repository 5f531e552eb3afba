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

/** EBML's magic number, which Matroska and WebM files start with. */
const EBML = Buffer.from([0x1a, 0x45, 0xdf, 0xa3]);
const DOC_TYPES = [
  { docType: 'matroska', ext: 'mkv', mime: 'video/matroska' },
  { docType: 'webm', ext: 'webm', mime: 'video/webm' },
];

/**
 * A Matroska or WebM file whose header file-type could not follow (it stops at the first element it cannot read):
 * EBML's magic number, and a DocType element naming one of the two in the first bytes of `head`. Such a file means to
 * be that format; it is a damaged one (CORRUPT_FILE once ffprobe has tried it), not an unknown one.
 */
export function byMatroskaDocType(head: Buffer): Detected | null {
  if (!head.subarray(0, EBML.length).equals(EBML)) return null;
  const header = head.subarray(0, 128);
  for (const { docType, ext, mime } of DOC_TYPES) {
    // The DocType element: its id 0x4282, its length as a one-byte size, the name.
    const element = Buffer.concat([Buffer.from([0x42, 0x82, 0x80 | docType.length]), Buffer.from(docType)]);
    if (header.includes(element)) return { ext, mime, kind: 'video' };
  }
  return null;
}

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
