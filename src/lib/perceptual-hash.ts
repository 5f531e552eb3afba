/**
 * The perceptual hash of a picture, for near duplicates (compared by lib/hamming.ts). The hash is a 64-bit dHash: the picture as 9x8 grey, one bit per pair of neighbours in a row (is the left one
 * brighter?). On the calibration set (test/duplicates-calibration.test.ts) it kept resized, re-encoded and cropped
 * copies closer than a DCT pHash did, which flips half its bits on pictures that are nearly symmetric (their odd
 * frequencies are all near the median). Alpha is laid on white first, so a transparent PNG hashes as it is shown.
 */
import sharp, { type Channels } from 'sharp';
import type { PerceptualHash } from './hamming.js';

/** The dHash of raw pixels (any channel count, 8 bits a channel), upright as shown. */
export async function perceptualHash(
  data: Buffer,
  info: { width: number; height: number; channels: Channels },
): Promise<PerceptualHash> {
  let picture = sharp(data, { raw: info });
  if (info.channels === 4 || info.channels === 2) picture = picture.flatten({ background: '#ffffff' });
  const grey = await picture.greyscale().resize(9, 8, { fit: 'fill' }).raw().toBuffer();
  let bits = 0n;
  for (let y = 0; y < 8; y++) {
    for (let x = 0; x < 8; x++) bits = (bits << 1n) | (grey[y * 9 + x]! > grey[y * 9 + x + 1]! ? 1n : 0n);
  }
  return bits.toString(16).padStart(16, '0');
}
