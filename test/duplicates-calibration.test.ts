/**
 * The near-duplicate threshold against the calibration set (test/support/duplicate-calibration.ts): copies resized,
 * re-encoded at quality 60, cropped by up to 5 % or EXIF-turned must match their original; photos of one shoot (a
 * burst), two views of one scene and other photos must not. npm run eval:duplicates prints the same figures.
 */
import { beforeAll, expect, test } from 'vitest';
import { NEAR_DUPLICATE_DISTANCE } from '../src/store/duplicates.js';
import { calibrationPairs, score, type CalibrationPair } from './support/duplicate-calibration.js';
import { CORPUS } from './helpers.js';

let pairs: CalibrationPair[];
beforeAll(async () => {
  pairs = await calibrationPairs(CORPUS);
}, 300_000);

const within = (p: CalibrationPair): boolean => p.distance <= NEAR_DUPLICATE_DISTANCE;

test('every resized, re-encoded, centre-cropped and EXIF-turned copy is a near duplicate', () => {
  const always = [
    'resized to half',
    'resized to a quarter',
    'JPEG quality 60',
    'cropped 5 % around',
    'EXIF orientation',
  ];
  const copies = pairs.filter((p) => always.some((k) => p.kind.startsWith(`copy:${k}`)));
  expect(copies.length).toBeGreaterThanOrEqual(6 * 19);
  expect(copies.filter((p) => !within(p)).map((p) => `${p.b}: ${p.distance}`)).toEqual([]);
});

test('no burst (one person, one shoot) is a near duplicate', () => {
  const bursts = pairs.filter((p) => p.kind.includes('burst'));
  expect(bursts.length).toBe(9);
  expect(bursts.filter(within).map((p) => `${p.a} ~ ${p.b}: ${p.distance}`)).toEqual([]);
});

test('the threshold keeps precision at 98 % or more and recall at 85 % or more over the whole set', () => {
  const s = score(pairs, NEAR_DUPLICATE_DISTANCE);
  expect(s.truePositives + s.falseNegatives).toBe(19 * 9);
  expect(s.precision).toBeGreaterThanOrEqual(0.98);
  expect(s.recall).toBeGreaterThanOrEqual(0.85);
});
