/**
 * The offline vision model (src/ai/human-vision.ts) by itself: how long its load takes, then the mean time per
 * corpus photo, each prepared as analyzeImage prepares it (upright, at most 1024 px, JPEG). One thread, one image at
 * a time: the detector serializes its calls, so concurrency within a thread would only queue.
 */
import path from 'node:path';
import { createHumanVision } from '../src/ai/human-vision.js';
import type { VisionInput } from '../src/ai/types.js';
import { asModelInput } from '../test/support/label-set.js';

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
const ROUNDS = 3;

function prepare(file: string): Promise<VisionInput> {
  return asModelInput(path.join(CORPUS, 'image', file));
}

export async function benchVision(): Promise<{ loadMs: number; msPerImage: number; images: number }> {
  const inputs = await Promise.all(PHOTOS.map(prepare));
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
  return { loadMs, msPerImage: Math.round(total / images), images };
}
