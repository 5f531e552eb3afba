/**
 * The one thumbnail pipeline: images, video poster frames and PDF page renders all come through here. The source is
 * decoded once (EXIF-oriented, first frame of an animation) to the largest size needed; every smaller size and the
 * ThumbHash placeholder are cut from that one decoded buffer.
 */
import sharp, { type OutputInfo, type Sharp } from 'sharp';
import { rgbaToThumbHash } from 'thumbhash';
import { MediaError } from './errors.js';
import { THUMBNAIL_MAX_ASPECT } from './instructions.js';
import { perceptualHash } from './perceptual-hash.js';
import type { ArtifactRef, Thumbnail } from './types.js';

export interface ThumbnailOptions {
  widths: number[];
  format: 'webp' | 'jpeg' | 'avif';
  quality: number;
  maxPixels: number;
  /** `inside` (default): the whole picture, `width` wide; `cover`: a square of width x width, cropped where it draws
   * the eye (sharp's attention strategy). */
  fit?: 'inside' | 'cover';
  /**
   * The step's memory ceiling in MB (STEP_MEMORY_MB): the decoded pixels and encoder buffers live outside the
   * JavaScript heap, where the thread's own ceiling does not see them, so they are counted against it here.
   */
  memoryMb: number;
}

const MAX_ASPECT = THUMBNAIL_MAX_ASPECT;

/** sharp's errors as codes: the type is already known from the bytes, so a failed decode means a damaged file. */
export function imageError(err: unknown): unknown {
  if (!(err instanceof Error) || err instanceof MediaError) return err;
  const msg = err.message;
  if (/pixel limit/i.test(msg))
    return new MediaError('TOO_LARGE', 'the image has more pixels than MAX_IMAGE_PIXELS allows');
  if (/compression format has not been built in: HEVC/i.test(msg)) {
    return new MediaError(
      'UNSUPPORTED_TYPE',
      'HEIC images compressed with HEVC cannot be decoded by this build of libvips',
    );
  }
  if (
    /no decoding plugin|unsupported (codec|feature|compression)|compression format has not been built in/i.test(msg)
  ) {
    return new MediaError('UNSUPPORTED_TYPE', `this image's compression cannot be decoded here: ${firstLine(msg)}`);
  }
  if (/unsupported image format/i.test(msg))
    return new MediaError('UNSUPPORTED_TYPE', 'the image format is not supported');
  return new MediaError('CORRUPT_FILE', `the image cannot be decoded: ${firstLine(msg)}`);
}

/** The first line of a libvips message, without the server-side path it starts with. */
function firstLine(s: string): string {
  return (s.split('\n')[0] ?? s).replace(/^\/\S+:\s*/, '').slice(0, 200);
}

export function openImage(input: string | Buffer, maxPixels: number): Sharp {
  // failOn 'error': truncated data is an error, not a grey bottom half.
  return sharp(input, { limitInputPixels: maxPixels, failOn: 'error', pages: 1, sequentialRead: true });
}

const MEGAPIXEL = 2 ** 20;
const MB = 2 ** 20;

/**
 * libavif's effort (0-9, sharp's default 4) for a job whose AVIF thumbnails hold `pixels` in all: at quality 100,
 * effort 4 took 9 s a megapixel of noise on this machine, effort 2 1.4 s, effort 1 0.55 s (2026-12-03, 748bc72).
 * Small sets keep the default; large ones trade some compression for a bounded time.
 */
export function avifEffort(pixels: number): number {
  if (pixels <= 2 * MEGAPIXEL) return 4;
  if (pixels <= 8 * MEGAPIXEL) return 2;
  return 1;
}

/** Width and height of a picture, or of a part of it. */
interface Size {
  width: number;
  height: number;
}

/** What the header says: the stored size, the size once EXIF-oriented, and the orientation. */
interface Source {
  stored: Size;
  oriented: Size;
  orientation: number;
  channels: number;
}

async function readSource(input: string | Buffer, maxPixels: number): Promise<Source> {
  let meta;
  try {
    meta = await openImage(input, maxPixels).metadata();
  } catch (err) {
    throw imageError(err);
  }
  if (!meta.width || !meta.height) throw new MediaError('CORRUPT_FILE', 'the image has no dimensions');
  const stored = { width: meta.width, height: meta.height };
  return {
    stored,
    oriented: meta.autoOrient ?? stored,
    orientation: meta.orientation ?? 1,
    channels: meta.hasAlpha ? 4 : 3,
  };
}

/** `size` scaled by `s` (never up), rounded as libvips rounds. */
const scaled = (size: Size, s: number): Size => ({
  width: Math.max(1, Math.round(size.width * Math.min(1, s))),
  height: Math.max(1, Math.round(size.height * Math.min(1, s))),
});

/** The size of a thumbnail `width` wide cut from a picture of `size`. */
function thumbnailSize(size: Size, width: number, fit: 'inside' | 'cover'): Size {
  if (fit === 'cover') {
    const side = Math.min(width, size.width, size.height);
    return { width: side, height: side };
  }
  return scaled(size, Math.min(width / size.width, (width * MAX_ASPECT) / size.height));
}

/**
 * The decoded picture every thumbnail is cut from: as large as the largest thumbnail needs, and never more than
 * `largest` x MAX_ASPECT * `largest`. For a square crop of a picture longer than MAX_ASPECT, that is the part
 * (MAX_ASPECT times as long as it is wide) where the square will be cut, not the whole length.
 */
function baseSize(size: Size, largest: number, fit: 'inside' | 'cover'): Size {
  if (fit === 'inside') return thumbnailSize(size, largest, 'inside');
  const whole = scaled(size, largest / Math.min(size.width, size.height));
  return {
    width: Math.min(whole.width, whole.height * MAX_ASPECT),
    height: Math.min(whole.height, whole.width * MAX_ASPECT),
  };
}

/**
 * Native memory a thumbnail's encoding holds, per pixel of the thumbnail, and what libvips holds besides. Measured on
 * 2026-12-03 (on 748bc72 with the bounded decode): a 4096 x 4096 square from the 4096x60000 picture of
 * test/thumbnail-limits.test.ts grew the process by 192 MB as WebP, 210 MB as JPEG, 442 MB as AVIF, of which 100 MB
 * is the decoded base; libvips' concurrency (1 or 2 threads) did not change that.
 */
const ENCODER_BYTES_PER_PIXEL = { webp: 8, jpeg: 8, avif: 24 } as const;
const LIBVIPS_BYTES = 32 * MB;

/**
 * The native memory the thumbnails hold at their peak, in bytes: the decoded base (twice while it is turned
 * upright), and the largest thumbnail resized and encoded from it. An estimate, on the side of more.
 */
function nativeBytes(base: Size, source: Source, largestOutput: Size, format: ThumbnailOptions['format']): number {
  const baseBytes = base.width * base.height * source.channels * (source.orientation > 1 ? 2 : 1);
  return baseBytes + largestOutput.width * largestOutput.height * ENCODER_BYTES_PER_PIXEL[format] + LIBVIPS_BYTES;
}

export async function renderThumbnails(
  input: string | Buffer,
  opts: ThumbnailOptions,
  write: (name: string, data: Buffer) => Promise<ArtifactRef>,
): Promise<{ thumbnails: Thumbnail[]; placeholder: string; perceptualHash: string | null }> {
  const fit = opts.fit ?? 'inside';
  const largest = Math.max(...opts.widths);
  const source = await readSource(input, opts.maxPixels);
  const planned = baseSize(source.oriented, largest, fit);
  const outputs = opts.widths.map((w) => thumbnailSize(planned, w, fit));
  const biggest = outputs.reduce((a, b) => (a.width * a.height >= b.width * b.height ? a : b));
  const need = nativeBytes(planned, source, biggest, opts.format);
  if (need > opts.memoryMb * MB) {
    throw new MediaError(
      'RESOURCE_LIMIT',
      `thumbnails ${opts.widths.join(', ')} wide of this ${source.oriented.width}x${source.oriented.height} picture ` +
        `need about ${Math.ceil(need / MB)} MB of decoded pixels; a step may hold STEP_MEMORY_MB=${opts.memoryMb} MB`,
    );
  }
  const effort = avifEffort(outputs.reduce((n, o) => n + o.width * o.height, 0));

  let base: { data: Buffer; info: OutputInfo };
  try {
    base = await decodeBase(input, source, largest, fit, opts.maxPixels);
  } catch (err) {
    throw imageError(err);
  }
  const raw = { width: base.info.width, height: base.info.height, channels: base.info.channels };
  const fromBase = (): Sharp => sharp(base.data, { raw });

  const thumbnails: Thumbnail[] = [];
  const seen = new Set<string>();
  for (const width of opts.widths) {
    const pipeline = fromBase().resize(
      fit === 'cover'
        ? { width, height: width, fit: 'cover', position: sharp.strategy.attention, withoutEnlargement: true }
        : { width, height: width * MAX_ASPECT, fit: 'inside', withoutEnlargement: true },
    );
    const encoded = await encode(pipeline, opts, effort).toBuffer({ resolveWithObject: true });
    const key = `${encoded.info.width}x${encoded.info.height}`;
    // A small source gives the same image for several widths: keep one.
    if (seen.has(key)) continue;
    seen.add(key);
    const name = `thumb-${width}.${opts.format === 'jpeg' ? 'jpg' : opts.format}`;
    const ref = await write(name, encoded.data);
    thumbnails.push({
      width: encoded.info.width,
      height: encoded.info.height,
      format: opts.format,
      bytes: ref.bytes,
      name,
      url: ref.url,
    });
  }

  const tiny = await fromBase()
    .resize({ width: 100, height: 100, fit: 'inside', withoutEnlargement: true })
    .ensureAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const hash = rgbaToThumbHash(tiny.info.width, tiny.info.height, tiny.data);
  // The perceptual hash describes the whole picture: a base cut from part of a long one (see decodeBase) has none.
  return {
    thumbnails,
    placeholder: Buffer.from(hash).toString('base64'),
    perceptualHash: wholePicture(source, fit) ? await perceptualHash(base.data, raw) : null,
  };
}

/** Whether decodeBase decodes the whole picture (not the part of a long one that a square is cut from). */
function wholePicture(source: Source, fit: 'inside' | 'cover'): boolean {
  const { width, height } = source.oriented;
  return fit === 'inside' || Math.max(width, height) <= Math.min(width, height) * MAX_ASPECT;
}

type Raw = { data: Buffer; info: OutputInfo };

/** The base (see baseSize), EXIF-oriented, as raw sRGB pixels. */
async function decodeBase(
  input: string | Buffer,
  source: Source,
  largest: number,
  fit: 'inside' | 'cover',
  maxPixels: number,
): Promise<Raw> {
  if (wholePicture(source, fit)) {
    return openImage(input, maxPixels)
      .autoOrient()
      .resize(
        fit === 'cover'
          ? // Its shorter side as long as the largest square, so every square is cut from enough pixels.
            { width: largest, height: largest, fit: 'outside', withoutEnlargement: true }
          : { width: largest, height: largest * MAX_ASPECT, fit: 'inside', withoutEnlargement: true },
      )
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  }
  // A square of a long picture: only the part it is cut from is decoded at full size. That part is chosen in the
  // stored orientation and turned upright afterwards, because libvips turns a whole picture before it cuts from it.
  const window = await attentionWindow(input, source.stored, maxPixels);
  const part = await openImage(input, maxPixels)
    .extract(window)
    .resize({ width: largest, height: largest, fit: 'outside', withoutEnlargement: true })
    .toColourspace('srgb')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  return upright(part, source.orientation);
}

/** A short side the attention strategy still finds the subject in, for the preview a long picture's part is chosen on. */
const PREVIEW_SIDE = 128;

/**
 * The part of a picture longer than MAX_ASPECT (in its stored orientation) that a square crop should come from: its
 * full width and MAX_ASPECT times that in length, placed by sharp's attention strategy on a small preview of the
 * whole (libvips holds the whole picture to apply the strategy at full size).
 */
async function attentionWindow(
  input: string | Buffer,
  stored: Size,
  maxPixels: number,
): Promise<{ left: number; top: number; width: number; height: number }> {
  const tall = stored.height > stored.width;
  const short = Math.min(stored.width, stored.height);
  const long = Math.max(stored.width, stored.height);
  const side = Math.min(PREVIEW_SIDE, short);
  const box = tall ? { width: side, height: side * MAX_ASPECT } : { width: side * MAX_ASPECT, height: side };
  const { info } = await openImage(input, maxPixels)
    .resize({ ...box, fit: 'cover', position: sharp.strategy.attention })
    .raw()
    .toBuffer({ resolveWithObject: true });
  // libvips reports where it cut as the negative offset of the cut, in the preview's pixels.
  const scale = side / short;
  const offset = Math.abs(tall ? (info.cropOffsetTop ?? 0) : (info.cropOffsetLeft ?? 0)) / scale;
  const length = Math.min(long, short * MAX_ASPECT);
  const start = Math.max(0, Math.min(long - length, Math.round(offset)));
  return tall
    ? { left: 0, top: start, width: stored.width, height: length }
    : { left: start, top: 0, width: length, height: stored.height };
}

/** EXIF orientations 2-8 as sharp's rotate, then flip (vertical), then flop (horizontal). */
const UPRIGHT: Record<number, { angle: number; flip?: true; flop?: true }> = {
  2: { angle: 0, flop: true },
  3: { angle: 180 },
  4: { angle: 0, flip: true },
  5: { angle: 270, flop: true },
  6: { angle: 90 },
  7: { angle: 90, flop: true },
  8: { angle: 270 },
};

/** Raw pixels in their stored orientation, turned as their EXIF orientation says. */
async function upright(part: Raw, orientation: number): Promise<Raw> {
  const turn = UPRIGHT[orientation];
  if (!turn) return part;
  const { width, height, channels } = part.info;
  let pipeline = sharp(part.data, { raw: { width, height, channels } }).rotate(turn.angle);
  if (turn.flip) pipeline = pipeline.flip();
  if (turn.flop) pipeline = pipeline.flop();
  return pipeline.raw().toBuffer({ resolveWithObject: true });
}

function encode(pipeline: Sharp, opts: ThumbnailOptions, avifEffortLevel: number): Sharp {
  switch (opts.format) {
    case 'jpeg':
      return pipeline.flatten({ background: '#ffffff' }).jpeg({ quality: opts.quality, mozjpeg: true });
    case 'avif':
      return pipeline.avif({ quality: opts.quality, effort: avifEffortLevel });
    default:
      return pipeline.webp({ quality: opts.quality });
  }
}
