/**
 * The one thumbnail pipeline: images, video poster frames and PDF page renders all come through here. The source is
 * decoded once (EXIF-oriented, first frame of an animation) to the largest size needed; every smaller size and the
 * ThumbHash placeholder are cut from that one decoded buffer.
 */
import sharp, { type OutputInfo, type Sharp } from 'sharp';
import { rgbaToThumbHash } from 'thumbhash';
import { MediaError } from './errors.js';
import type { ArtifactRef, Thumbnail } from './types.js';

export interface ThumbnailOptions {
  widths: number[];
  format: 'webp' | 'jpeg' | 'avif';
  quality: number;
  maxPixels: number;
  /** `inside` (default): the whole picture, `width` wide; `cover`: a square of width x width, cropped where it draws
   * the eye (sharp's attention strategy). */
  fit?: 'inside' | 'cover';
}

/** Thumbnails are `width` wide (never enlarged); very tall sources are capped at twice that in height. */
const MAX_ASPECT = 2;

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

export async function renderThumbnails(
  input: string | Buffer,
  opts: ThumbnailOptions,
  write: (name: string, data: Buffer) => Promise<ArtifactRef>,
): Promise<{ thumbnails: Thumbnail[]; placeholder: string }> {
  const largest = Math.max(...opts.widths);
  let base: { data: Buffer; info: OutputInfo };
  try {
    base = await openImage(input, opts.maxPixels)
      .autoOrient()
      .resize(
        opts.fit === 'cover'
          ? // Its shorter side as long as the largest square, so every square is cut from enough pixels.
            { width: largest, height: largest, fit: 'outside', withoutEnlargement: true }
          : { width: largest, height: largest * MAX_ASPECT, fit: 'inside', withoutEnlargement: true },
      )
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw imageError(err);
  }
  const raw = { width: base.info.width, height: base.info.height, channels: base.info.channels };
  const fromBase = (): Sharp => sharp(base.data, { raw });

  const thumbnails: Thumbnail[] = [];
  const seen = new Set<string>();
  for (const width of opts.widths) {
    const pipeline = fromBase().resize(
      opts.fit === 'cover'
        ? { width, height: width, fit: 'cover', position: sharp.strategy.attention, withoutEnlargement: true }
        : { width, height: width * MAX_ASPECT, fit: 'inside', withoutEnlargement: true },
    );
    const encoded = await encode(pipeline, opts).toBuffer({ resolveWithObject: true });
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
  return { thumbnails, placeholder: Buffer.from(hash).toString('base64') };
}

function encode(pipeline: Sharp, opts: ThumbnailOptions): Sharp {
  switch (opts.format) {
    case 'jpeg':
      return pipeline.flatten({ background: '#ffffff' }).jpeg({ quality: opts.quality, mozjpeg: true });
    case 'avif':
      return pipeline.avif({ quality: opts.quality });
    default:
      return pipeline.webp({ quality: opts.quality });
  }
}
