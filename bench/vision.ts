/**
 * The offline vision model (src/ai/human-vision.ts) by itself: how long its load takes, then the mean time per
 * corpus photo, each prepared as analyzeImage prepares it (upright, at most 1024 px, JPEG, with the sharper copy of
 * at most 2048 px the model asks for), then the same for the group photo of 14 faces and the faces it counts. One
 * thread, one image at a time: the detector serializes its calls, so concurrency within a thread would only queue.
 */
import path from 'node:path';
import { createHumanVision } from '../src/ai/human-vision.js';
import type { VisionInput } from '../src/ai/types.js';
import sharp from 'sharp';

const CORPUS = process.env.MEDIA_CORPUS ?? path.resolve(import.meta.dirname, '..', '..', 'shared', 'corpus');
const PHOTOS = [
  'camera-canon-ixus.jpg',
  'camera-gps-dscn0010.jpg',
  'cmyk-no-profile.jpg',
  'flowers.jpeg',
  'landscape-exif-orientation-5.jpg',
  'portrait-exif-orientation-6.jpg',
  'photo.webp',
  'pitm.avif',
  '320x240.jpg',
  'g31d.tif',
];
const GROUP = 'faces/group.jpg';
const ROUNDS = 3;

/** A corpus picture as analyzeImage hands it to the model (also used by the face tests). */
export async function prepare(file: string): Promise<VisionInput> {
  const { data, info } = await sharp(path.isAbsolute(file) ? file : path.join(CORPUS, file))
    .autoOrient()
    .resize(2048, 2048, { fit: 'inside', withoutEnlargement: true })
    .toColourspace('srgb')
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const jpeg = await sharp(data, { raw: { width: info.width, height: info.height, channels: 3 } })
    .resize(1024, 1024, { fit: 'inside', withoutEnlargement: true })
    .jpeg({ quality: 85 })
    .toBuffer({ resolveWithObject: true });
  const detail = { data, width: info.width, height: info.height };
  return { image: jpeg.data, mime: 'image/jpeg', width: jpeg.info.width, height: jpeg.info.height, detail };
}

export async function benchVision(): Promise<{
  loadMs: number;
  msPerImage: number;
  images: number;
  msPerGroup: number;
  groupFaces: number;
}> {
  const inputs = await Promise.all(PHOTOS.map((p) => prepare(path.join('image', p))));
  const group = await prepare(GROUP);
  const vision = createHumanVision({ minScore: 0.3 });
  const signal = new AbortController().signal;
  // The first call loads the model, and the first detection pays for setting up the WebAssembly kernels.
  await vision.analyze(inputs[0]!, { signal });
  const loadMs = vision.loadMs ?? NaN;
  let total = 0;
  for (let round = 0; round < ROUNDS; round++) {
    for (const input of inputs) {
      const started = performance.now();
      await vision.analyze(input, { signal });
      total += performance.now() - started;
    }
  }
  const images = inputs.length * ROUNDS;
  let groupTotal = 0;
  let groupFaces = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const started = performance.now();
    // Before the faces had boxes, `faces` was their count.
    const faces: unknown = (await vision.analyze(group, { signal })).faces;
    groupTotal += performance.now() - started;
    groupFaces = Array.isArray(faces) ? faces.length : Number(faces);
  }
  return {
    loadMs,
    msPerImage: Math.round(total / images),
    images,
    msPerGroup: Math.round(groupTotal / ROUNDS),
    groupFaces,
  };
}
