/**
 * The near-duplicate calibration set, built from real photos of the corpus (referenced in place): copies that must
 * match their original (resized, re-encoded at JPEG quality 60, cropped by up to 5 %, turned by an EXIF orientation,
 * and a mix of those) and pairs that must not (other photos, among them a series of one person in one place from one
 * shoot, the way a burst looks, and two views of one scene from positions a few steps apart). Every picture is hashed
 * the way a job hashes it: through the thumbnail pipeline with the default widths.
 */
import fs from 'node:fs';
import path from 'node:path';
import sharp, { type Sharp } from 'sharp';
import { hammingDistance } from '../../src/lib/hamming.js';
import { renderThumbnails } from '../../src/lib/image.js';

/** The photos: distinct pictures, plus the person-a and person-b series (one person each, one shoot). */
export const CALIBRATION_PHOTOS = [
  'image/flowers.jpeg',
  'image/camera-gps-dscn0010.jpg',
  'image/camera-canon-ixus.jpg',
  'image/320x240.jpg',
  'image/photo.webp',
  'image/landscape-exif-orientation-5.jpg',
  'image/portrait-exif-orientation-6.jpg',
  'image/g31d.tif',
  'image/cmyk-no-profile.jpg',
  'image/with-alpha.png',
  'faces/person-a-2.jpg',
  'faces/person-a-4.jpg',
  'faces/person-a-6.jpg',
  'faces/person-a-8.jpg',
  'faces/person-b-1.jpg',
  'faces/person-b-3.jpg',
  'faces/person-b-4.jpg',
  'faces/person-c.jpg',
  'faces/group.jpg',
];

export interface CalibrationPair {
  /** What the pair is: `copy:<kind>` (must match) or `other:<kind>` (must not). */
  kind: string;
  a: string;
  b: string;
  distance: number;
  duplicate: boolean;
}

type Edit = (upright: Sharp, width: number, height: number) => Sharp;

/** The copies of a photo that are near duplicates of it. */
const COPIES: Record<string, Edit> = {
  'resized to half': (p, w) => p.resize(Math.round(w / 2)).jpeg({ quality: 90 }),
  'resized to a quarter': (p, w) => p.resize(Math.max(64, Math.round(w / 4))).png(),
  'JPEG quality 60': (p) => p.jpeg({ quality: 60 }),
  'cropped 5 % around': (p, w, h) => p.extract(box(w, h, 0.025, 0.025, 0.95, 0.95)).jpeg({ quality: 90 }),
  'cropped 5 % at a corner': (p, w, h) => p.extract(box(w, h, 0.05, 0.05, 0.95, 0.95)).jpeg({ quality: 90 }),
  'cropped 5 % at one side': (p, w, h) => p.extract(box(w, h, 0, 0, 0.95, 1)).jpeg({ quality: 90 }),
  // The pixels stored turned, with the EXIF orientation that turns them back.
  'EXIF orientation 6': (p) => p.rotate(270).withMetadata({ orientation: 6 }).jpeg({ quality: 90 }),
  'EXIF orientation 3': (p) => p.rotate(180).withMetadata({ orientation: 3 }).jpeg({ quality: 90 }),
  'cropped 3 %, halved, quality 60': (p, w, h) =>
    p
      .extract(box(w, h, 0, 0, 0.97, 0.97))
      .resize(Math.round(w / 2))
      .jpeg({ quality: 60 }),
};

/** Two views of one scene: windows of 85 % of the width, from the left and from the right (70 % in common). */
const VIEWS: [string, Edit, Edit] = [
  'the same scene from another position',
  (p, w, h) => p.extract(box(w, h, 0, 0, 0.85, 1)).png(),
  (p, w, h) => p.extract(box(w, h, 0.15, 0, 0.85, 1)).png(),
];

function box(w: number, h: number, left: number, top: number, width: number, height: number) {
  const x = Math.round(w * left);
  const y = Math.round(h * top);
  return {
    left: x,
    top: y,
    width: Math.min(w - x, Math.round(w * width)),
    height: Math.min(h - y, Math.round(h * height)),
  };
}

/** The dHash a job would store for this picture (generateThumbnails with the default widths). */
export async function jobHash(input: string | Buffer): Promise<string> {
  const { perceptualHash } = await renderThumbnails(
    input,
    { widths: [160, 320, 640], format: 'webp', quality: 80, maxPixels: 100_000_000, memoryMb: 1024 },
    (name, data) => Promise.resolve({ name, url: name, bytes: data.length }),
  );
  if (!perceptualHash) throw new Error('no perceptual hash');
  return perceptualHash;
}

/** Every pair of the set, with the distance of the two hashes. */
export async function calibrationPairs(corpus: string): Promise<CalibrationPair[]> {
  const pairs: CalibrationPair[] = [];
  const hashes = new Map<string, string>();
  for (const photo of CALIBRATION_PHOTOS) {
    const file = path.join(corpus, photo);
    if (!fs.existsSync(file)) throw new Error(`the corpus lacks ${photo}`);
    const original = await jobHash(file);
    hashes.set(photo, original);
    // Upright, and laid on white as shown, before it is edited.
    const upright = await sharp(file).autoOrient().flatten({ background: '#ffffff' }).png().toBuffer();
    const { width, height } = await sharp(upright).metadata();
    const edited = async (edit: Edit): Promise<string> => jobHash(await edit(sharp(upright), width, height).toBuffer());
    for (const [kind, edit] of Object.entries(COPIES)) {
      const distance = hammingDistance(original, await edited(edit));
      pairs.push({ kind: `copy:${kind}`, a: photo, b: `${photo} ${kind}`, distance, duplicate: true });
    }
    // A graphic on a plain ground looks the same from both sides: no second view to tell apart.
    if (photo === 'image/with-alpha.png') continue;
    const [kind, left, right] = VIEWS;
    const distance = hammingDistance(await edited(left), await edited(right));
    pairs.push({ kind: `other:${kind}`, a: `${photo} left`, b: `${photo} right`, distance, duplicate: false });
  }
  for (const [i, a] of CALIBRATION_PHOTOS.entries()) {
    for (const b of CALIBRATION_PHOTOS.slice(i + 1)) {
      const series = a.replace(/-\d+\.jpg$/, '') === b.replace(/-\d+\.jpg$/, '') && a.startsWith('faces/person-');
      const kind = series ? 'other:one person, one shoot (a burst)' : 'other:another photo';
      pairs.push({ kind, a, b, distance: hammingDistance(hashes.get(a)!, hashes.get(b)!), duplicate: false });
    }
  }
  return pairs;
}

export interface Score {
  threshold: number;
  truePositives: number;
  falseNegatives: number;
  falsePositives: number;
  trueNegatives: number;
  precision: number;
  recall: number;
}

/** How a threshold sorts the pairs: a pair is called a duplicate when its distance is at most `threshold`. */
export function score(pairs: CalibrationPair[], threshold: number): Score {
  const called = (p: CalibrationPair): boolean => p.distance <= threshold;
  const tp = pairs.filter((p) => p.duplicate && called(p)).length;
  const fn = pairs.filter((p) => p.duplicate && !called(p)).length;
  const fp = pairs.filter((p) => !p.duplicate && called(p)).length;
  const tn = pairs.filter((p) => !p.duplicate && !called(p)).length;
  return {
    threshold,
    truePositives: tp,
    falseNegatives: fn,
    falsePositives: fp,
    trueNegatives: tn,
    precision: tp + fp ? tp / (tp + fp) : 1,
    recall: tp + fn ? tp / (tp + fn) : 1,
  };
}
