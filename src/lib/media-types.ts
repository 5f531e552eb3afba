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
  m2v: 'video',
  h264: 'video',
  hevc: 'video',
  mts: 'video',
  ts: 'video',
  flv: 'video',
  f4v: 'video',
  ogv: 'video',
  mp3: 'audio',
  mp2: 'audio',
  ac3: 'audio',
  wav: 'audio',
  aif: 'audio',
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
  m2v: 'mpegvideo',
  h264: 'h264',
  hevc: 'hevc',
  mts: 'mpegts',
  ts: 'mpegts',
  flv: 'flv',
  ogv: 'ogg',
  ogg: 'ogg',
  oga: 'ogg',
  opus: 'ogg',
  mp3: 'mp3',
  // ffmpeg's mp3 demuxer reads MPEG audio of every layer; it has no demuxer of its own for layer II.
  mp2: 'mp3',
  ac3: 'ac3',
  wav: 'wav',
  aif: 'aiff',
  aac: 'aac',
  flac: 'flac',
};

/**
 * What else a file sniffed as `ext` may be when its own demuxer finds no stream, tried in order: the same bytes at
 * the start mean either (a program stream and an elementary video stream both begin with an MPEG start code). Each is
 * a demuxer of a single stream that reads only this file: never one that could open others (playlists, concat lists).
 */
const FALLBACKS: Record<string, string[]> = {
  mpg: ['m2v'],
};

/** The formats to try, in order, for a file sniffed as `ext`: its own, then its fallbacks. */
export function formatsToTry(ext: string): string[] {
  return [ext, ...(FALLBACKS[ext] ?? [])];
}

/** The MIME type of a format validate settled on (a fallback's, or the sniffed one's). */
export const FALLBACK_MIME: Record<string, string> = { m2v: 'video/mpeg' };

/** An Annex B start code (00 00 01, or 00 00 00 01) at `at`: where its NAL unit begins, or -1. */
function nalAt(head: Buffer, at: number): number {
  if (head[at] !== 0 || head[at + 1] !== 0) return -1;
  if (head[at + 2] === 1) return at + 3;
  if (head[at + 2] === 0 && head[at + 3] === 1) return at + 4;
  return -1;
}

/**
 * A raw H.264 or HEVC stream (Annex B: no container, NAL units after start codes), which file-type does not know: it
 * must start with a start code and a parameter set or access unit delimiter, and hold a second start code soon after
 * (a file that merely begins with 00 00 01 is not enough).
 */
export function byElementaryStream(head: Buffer): Detected | null {
  const nal = nalAt(head, 0);
  if (nal < 0 || nal >= head.length) return null;
  const more = head.subarray(nal, 1024).includes(Buffer.from([0, 0, 1]));
  if (!more) return null;
  const h264 = head[nal]! & 0x1f;
  const forbidden = head[nal]! & 0x80;
  // H.264: nal_unit_type 7 (sequence parameter set) or 9 (access unit delimiter), nal_ref_idc set for an SPS.
  if (!forbidden && ((h264 === 7 && (head[nal]! & 0x60) !== 0) || h264 === 9))
    return { ext: 'h264', mime: 'video/h264', kind: 'video' };
  // HEVC: a two-byte NAL header; type 32 (video parameter set) or 35 (access unit delimiter), layer 0, temporal id 1.
  const hevc = (head[nal]! >> 1) & 0x3f;
  if (!forbidden && (hevc === 32 || hevc === 35) && (head[nal + 1]! & 0x07) === 1)
    return { ext: 'hevc', mime: 'video/h265', kind: 'video' };
  return null;
}

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
