/**
 * extractMetadata: what the file is, in numbers. Images: dimensions (as displayed, after EXIF orientation), format,
 * EXIF and GPS (exifr). Audio/video: container, duration, streams (ffprobe). PDFs: document info and page size.
 * Every file: size, sha256 and the uploader.
 */
import exifr from 'exifr';
import sharp, { type Metadata as SharpMetadata } from 'sharp';
import { MediaError } from '../lib/errors.js';
import { exifDate, exifOffset, gpsTimestamp } from '../lib/exif-dates.js';
import { imageError } from '../lib/image.js';
import { withPdf } from '../lib/pdf.js';
import { readHead } from '../lib/files.js';
import {
  audioStreams,
  ELEMENTARY_FORMATS,
  probeMedia,
  readableSeconds,
  subtitleStreams,
  videoStreams,
  type ProbeResult,
} from '../lib/probe.js';
import { wavClaim } from '../lib/wav-header.js';
import type { Metadata } from '../lib/types.js';
import type { StepFn } from './deps.js';

const EXIF_FIELDS = [
  'Make',
  'Model',
  'LensModel',
  'Software',
  'OffsetTimeOriginal',
  'ExposureTime',
  'FNumber',
  'ISO',
  'FocalLength',
  'FocalLengthIn35mmFormat',
  'Flash',
  'WhiteBalance',
  'ExposureProgram',
  'MeteringMode',
  'Orientation',
  'Artist',
  'Copyright',
  'ImageDescription',
] as const;

export const extractMetadata: StepFn = async (input, deps, ctx) => {
  const info = input.fileInfo;
  if (!info || !input.fileType) throw new MediaError('INTERNAL', 'extractMetadata ran before validate');
  const base: Metadata = { size: info.size, sha256: info.sha256, mime: info.mime, uploader: input.user ?? null };
  const file = input.file.path;
  let extra: Partial<Metadata>;
  switch (input.fileType) {
    case 'image':
      extra = await imageMetadata(file);
      break;
    case 'pdf':
      extra = await pdfMetadata(file);
      break;
    default:
      extra = await avMetadata(deps.tools, file, info.ext || null, info.size, ctx.signal);
  }
  return { status: 'succeeded', results: { metadata: { ...base, ...extra } } };
};

async function imageMetadata(file: string): Promise<Partial<Metadata>> {
  let meta: SharpMetadata;
  try {
    meta = await sharp(file, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw imageError(err);
  }
  const orientation = meta.orientation ?? null;
  // Orientations 5-8 turn the picture a quarter: report the size as it is displayed.
  const swap = orientation !== null && orientation >= 5;
  const out: Partial<Metadata> = {
    width: swap ? meta.height : meta.width,
    height: swap ? meta.width : meta.height,
    format: meta.format === 'heif' ? heifFormat(meta.compression) : meta.format,
    animated: (meta.pages ?? 1) > 1 && (meta.format === 'gif' || meta.format === 'webp'),
    colorSpace: meta.space,
    hasAlpha: meta.hasAlpha,
    orientation,
    exif: {},
    gps: null,
  };
  if (out.animated) out.pages = meta.pages;
  // exifr throws on files without EXIF segments it understands; no EXIF is not an error.
  const tags = (await exifr
    .parse(file, {
      tiff: true,
      exif: true,
      gps: true,
      xmp: false,
      icc: false,
      iptc: false,
      makerNote: false,
      userComment: false,
      // Dates as written: exifr's Date objects read the camera's local time in this process's zone (see exif-dates.ts).
      reviveValues: false,
    })
    .catch(() => null)) as Record<string, unknown> | null;
  if (tags) {
    out.exif = { ...pickExif(tags), ...exifDates(tags) };
    const lat = tags.latitude;
    const lon = tags.longitude;
    if (typeof lat === 'number' && typeof lon === 'number' && Number.isFinite(lat) && Number.isFinite(lon)) {
      out.gps = {
        latitude: round(lat, 7),
        longitude: round(lon, 7),
        altitude: typeof tags.GPSAltitude === 'number' ? tags.GPSAltitude : null,
        timestamp: gpsTimestamp(tags.GPSDateStamp, tags.GPSTimeStamp),
      };
    }
  }
  return out;
}

function heifFormat(compression: string | undefined): string {
  return compression === 'av1' ? 'avif' : 'heic';
}

/**
 * When the picture was taken and digitised, with the camera's offset from UTC when it wrote one; `timeZone` is that
 * offset, or null when the camera gave none (the times are then local times of an unknown zone).
 */
function exifDates(tags: Record<string, unknown>): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  const original = exifOffset(tags.OffsetTimeOriginal);
  const taken = exifDate(tags.DateTimeOriginal, original, tags.SubSecTimeOriginal);
  if (taken) {
    out.DateTimeOriginal = taken;
    out.timeZone = original;
  }
  const digitized = exifDate(tags.CreateDate, exifOffset(tags.OffsetTimeDigitized), tags.SubSecTimeDigitized);
  if (digitized) out.CreateDate = digitized;
  return out;
}

function pickExif(tags: Record<string, unknown>): Record<string, string | number | boolean | null> {
  const out: Record<string, string | number | boolean | null> = {};
  for (const key of EXIF_FIELDS) {
    const v = tags[key];
    if (typeof v === 'string') {
      const clean = v.replace(/\0/g, '').trim();
      if (clean) out[key] = clean.slice(0, 200);
    } else if ((typeof v === 'number' && Number.isFinite(v)) || typeof v === 'boolean') {
      out[key] = v;
    }
  }
  return out;
}

async function avMetadata(
  tools: { ffmpeg: string; ffprobe: string },
  file: string,
  ext: string | null,
  size: number,
  signal: AbortSignal,
): Promise<Partial<Metadata>> {
  const probe = await probeMedia(tools.ffprobe, file, { timeoutMs: 30_000, signal, ext });
  const video = videoStreams(probe)[0];
  const length = await lengths(tools.ffmpeg, file, ext, size, probe, signal);
  const out: Partial<Metadata> = {
    container: probe.container,
    durationSec: length.durationSec,
    ...(length.declaredDurationSec !== undefined && { declaredDurationSec: length.declaredDurationSec }),
    bitRate: probe.bitRate,
    streams: probe.streams,
    hasVideo: video !== undefined,
    hasAudio: audioStreams(probe).length > 0,
    subtitleTracks: subtitleStreams(probe).length,
  };
  if (video) {
    const quarter = Math.abs(video.rotation ?? 0) % 180 === 90;
    out.width = quarter ? video.height : video.width;
    out.height = quarter ? video.width : video.height;
    out.format = video.codec ?? undefined;
  } else {
    out.format = audioStreams(probe)[0]?.codec ?? undefined;
  }
  const created = probe.tags.creation_time;
  if (created) out.exif = { CreateDate: created };
  return out;
}

/** Less than this much missing is no loss: the last frame's length, rounding in a header. */
const MISSING_SLACK_SEC = 0.5;
const MISSING_SLACK_SHARE = 0.03;

/**
 * The media's length as the steps should use it, and what its header declared when that is more than the file holds
 * (then finalize warns TRUNCATED). The header's length comes from ffprobe and, for WAV, from the data chunk's size
 * (ffprobe takes a WAV's length from the file's size); the readable length from reading every packet. A stream
 * without a container (no index, no length) is as long as what can be read.
 */
async function lengths(
  ffmpeg: string,
  file: string,
  ext: string | null,
  size: number,
  probe: ProbeResult,
  signal: AbortSignal,
): Promise<{ durationSec: number | null; declaredDurationSec?: number }> {
  // The whole file is read at the disk's pace: a generous limit, and no verdict (only no warning) if it is passed.
  const readable = await readableSeconds(ffmpeg, file, { timeoutMs: 60_000, signal, ext });
  if (ELEMENTARY_FORMATS.has(probe.container) || probe.durationSec === null)
    return { durationSec: readable !== null ? round(readable, 3) : probe.durationSec };
  const wav = ext === 'wav' ? wavClaim(await readHead(file, 64 * 1024), size) : null;
  const declared = Math.max(probe.durationSec, wav?.declaredSec ?? 0);
  const present = Math.min(readable ?? Infinity, wav?.presentSec ?? Infinity);
  if (!Number.isFinite(present) || declared - present <= Math.max(MISSING_SLACK_SEC, MISSING_SLACK_SHARE * declared))
    return { durationSec: probe.durationSec };
  return { durationSec: round(present, 3), declaredDurationSec: round(declared, 3) };
}

async function pdfMetadata(file: string): Promise<Partial<Metadata>> {
  return withPdf(file, async (pdf) => {
    const info = await pdf.getInfo({ parsePageInfo: true, partial: [1] });
    const doc = (info.info ?? {}) as Record<string, unknown>;
    const dates = info.getDateNode();
    const str = (v: unknown): string | null => (typeof v === 'string' && v.trim() ? v.trim().slice(0, 300) : null);
    const iso = (d: Date | null | undefined): string | null =>
      d && !Number.isNaN(d.getTime()) ? d.toISOString() : null;
    const page = info.pages[0];
    return {
      pages: info.total,
      format: 'pdf',
      pdf: {
        version: str(doc.PDFFormatVersion),
        title: str(doc.Title),
        author: str(doc.Author),
        creator: str(doc.Creator),
        producer: str(doc.Producer),
        createdAt: iso(dates.CreationDate ?? dates.XmpCreateDate),
        modifiedAt: iso(dates.ModDate ?? dates.XmpModifyDate),
        hasForm: doc.IsAcroFormPresent === true,
        ...(page ? { pageWidth: Math.round(page.width), pageHeight: Math.round(page.height) } : {}),
      },
    };
  });
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
