/**
 * The baseline of the benchmarks: the image work the service does for a photo (detect, hash, validate by decoding,
 * metadata, EXIF, three WebP thumbnails from one decode, statistics), done by hand with the same libraries.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import exifr from 'exifr';
import { fileTypeFromBuffer, fileTypeFromFile } from 'file-type';
import sharp from 'sharp';

export async function plainImageWork(file: string, out: string): Promise<void> {
  await fileTypeFromFile(file);
  createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  await sharp(file, { failOn: 'error' }).metadata();
  await sharp(file, { failOn: 'error' }).resize(64, 64, { fit: 'inside' }).raw().toBuffer();
  await sharp(file).metadata();
  await exifr.parse(file).catch(() => null);
  await threeThumbnails(file, file, out);
  const small = sharp(file).autoOrient().resize(256, 256, { fit: 'inside' });
  await small.clone().raw().toBuffer();
  await small.clone().stats();
}

/**
 * The plain script a user would write around BullMQ and sharp for a photo, and the photo benchmark's baseline: one
 * read, the type from the bytes, metadata, three WebP thumbnails from one decode. Nothing else.
 */
export async function plainPhotoWork(file: string, out: string): Promise<void> {
  const bytes = await fs.promises.readFile(file);
  await fileTypeFromBuffer(bytes);
  await sharp(bytes).metadata();
  await threeThumbnails(bytes, file, out);
}

/** Three WebP thumbnails (160, 320, 640 px) from one decode of `input`, written as `<file's name>-<width>.webp`. */
async function threeThumbnails(input: string | Buffer, file: string, out: string): Promise<void> {
  const base = await sharp(input, { failOn: 'error' })
    .autoOrient()
    .resize({ width: 640, height: 1280, fit: 'inside', withoutEnlargement: true })
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  for (const w of [160, 320, 640]) {
    await sharp(base.data, { raw: base.info })
      .resize({ width: w, withoutEnlargement: true })
      .webp({ quality: 80 })
      .toFile(path.join(out, `${path.basename(file)}-${w}.webp`));
  }
}
