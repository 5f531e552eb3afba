import { beforeAll, describe, expect, test } from 'vitest';
import { createHumanVision } from '../src/ai/human-vision.js';
import { type LabelledPhoto, loadLabelSet, prepare } from './support/label-set.js';
import type { VisionInput, VisionModel } from '../src/ai/types.js';

/** VISION_MIN_SCORE's default. */
const MIN_SCORE = 0.3;

/**
 * Photos of test/fixtures/labels where the raw detector is wrong with confidence (a clock on a test card, a giraffe
 * on a hillside, a fire hydrant and a clock on a church square, a vase on stone stools and on a street lamp, a
 * person on a sleeping greyhound's face) and photos whose main subjects it finds (people and a dog in a park, a bus,
 * horses, a woman by the sea).
 */
const WRONG = [
  'corpus:image/320x240.jpg',
  'corpus:image/camera-gps-dscn0010.jpg',
  'exif-gps-dscn0027.jpg',
  'exif-org-sony-cybershot.jpg',
  'exif-hdr-canon.jpg',
  'exif-org-kodak-dc240.jpg',
];
const RIGHT = [
  'corpus:image/cmyk-no-profile.jpg',
  'exif-nikon-p1.jpg',
  'darknet-horses.jpg',
  'exif-org-sony-cybershot.jpg',
];

async function labelsOf(vision: VisionModel, input: VisionInput): Promise<string[]> {
  const result = await vision.analyze(input, { signal: new AbortController().signal });
  return result.labels.map((l) => l.name);
}

describe('offline labels, calibrated per class', () => {
  const photos = new Map<string, LabelledPhoto & { input: VisionInput }>();

  beforeAll(async () => {
    const set = await loadLabelSet();
    for (const file of new Set([...WRONG, ...RIGHT])) {
      const photo = set.find((p) => p.file === file);
      if (!photo) throw new Error(`${file} is not in labels.json`);
      photos.set(file, { ...photo, input: await prepare(file) });
    }
  });

  /** The photo's labels by the vision model, split by what the hand labels say of them. */
  async function judge(vision: VisionModel, file: string): Promise<{ knownWrong: string[]; unknown: string[] }> {
    const photo = photos.get(file)!;
    const names = await labelsOf(vision, photo.input);
    return {
      knownWrong: names.filter((n) => photo.absent.includes(n)),
      unknown: names.filter((n) => !photo.main.includes(n) && !photo.present.includes(n)),
    };
  }

  test('the raw detector is wrong on these photos: what the calibration has to remove', async () => {
    const raw = createHumanVision({ minScore: MIN_SCORE, labelCalibration: null });
    for (const file of WRONG) expect((await judge(raw, file)).knownWrong, file).not.toEqual([]);
  });

  test('no known wrong label, and nothing that is not in the picture', async () => {
    const vision = createHumanVision({ minScore: MIN_SCORE });
    for (const file of WRONG) expect(await judge(vision, file), file).toEqual({ knownWrong: [], unknown: [] });
  });

  test('the main subjects are still there', async () => {
    const vision = createHumanVision({ minScore: MIN_SCORE });
    for (const file of RIGHT) {
      const photo = photos.get(file)!;
      const names = await labelsOf(vision, photo.input);
      expect(names, file).toEqual(expect.arrayContaining(photo.main));
    }
  });
});
