/**
 * The baseline of the benchmarks: the image work the service does for a photo (detect, hash, validate by decoding,
 * metadata, EXIF, three WebP thumbnails from one decode, statistics), done by hand with the same libraries.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import exifr from 'exifr';
import { fileTypeFromFile } from 'file-type';
import sharp from 'sharp';

export async function plainImageWork(file: string, out: string): Promise<void> {
  await fileTypeFromFile(file);
  createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  await sharp(file, { failOn: 'error' }).metadata();
  await sharp(file, { failOn: 'error' }).resize(64, 64, { fit: 'inside' }).raw().toBuffer();
  await sharp(file).metadata();
  await exifr.parse(file).catch(() => null);
  const base = await sharp(file, { failOn: 'error' })
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
  const small = sharp(file).autoOrient().resize(256, 256, { fit: 'inside' });
  await small.clone().raw().toBuffer();
  await small.clone().stats();
}
