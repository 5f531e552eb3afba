/**
 * Faces in group photos: the offline detector looks at the whole picture and at overlapping tiles of a sharper copy,
 * and one box per face comes out, in the original's upright pixels. Counted by eye: the group photo shows 14 faces
 * (ten women and four men; a few more heads in the background show no face), each portrait one.
 */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { prepare } from '../bench/vision.js';
import { merge, TILE, tilesOf, type Box } from '../src/ai/faces.js';
import { createHumanVision } from '../src/ai/human-vision.js';
import type { VisionResult } from '../src/ai/types.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/lib/log.js';
import type { Face } from '../src/lib/types.js';
import { createRuntime, type Runtime } from '../src/runtime.js';
import { CORPUS, tempDir } from './helpers.js';

const GROUP = path.join(CORPUS, 'faces/group.jpg');
const GROUP_FACES = 14;
const PORTRAITS = ['a-2', 'a-4', 'a-6', 'a-8', 'b-1', 'b-3', 'b-4', 'c'].map((p) =>
  path.join(CORPUS, `faces/person-${p}.jpg`),
);
/** Nobody in them: hillside farmhouses, a blossoming tree, a waterfall, a scanned test page with letters. */
const NOBODY = ['camera-gps-dscn0010.jpg', 'photo.webp', 'landscape-exif-orientation-5.jpg', 'g31d.tif'].map((f) =>
  path.join(CORPUS, 'image', f),
);

const dir = tempDir('faces');
/** The group three times side by side (5760 x 1440): 42 faces, each too small for the whole picture's detection. */
const panorama = path.join(dir, 'panorama.jpg');
/** A portrait stored turned a quarter, with EXIF orientation 6 to stand it up again. */
const turned = path.join(dir, 'turned.jpg');

beforeAll(async () => {
  await sharp(GROUP).extend({ right: 3840, extendWith: 'repeat' }).jpeg({ quality: 90 }).toFile(panorama);
  await sharp(PORTRAITS[7]).rotate(270).withMetadata({ orientation: 6 }).jpeg({ quality: 90 }).toFile(turned);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const signal = (): AbortSignal => new AbortController().signal;
const within20 = (count: number, truth: number): boolean => Math.abs(count - truth) <= 0.2 * truth;

/** What analyzeImage hands the model: a JPEG of at most 1024 px, and the detail copy of at most 2048 px it asks for. */
const asService = prepare;

function expectBoxesInPicture(r: VisionResult): void {
  for (const f of r.faces!) {
    expect(f.score).toBeGreaterThan(0);
    expect(f.score).toBeLessThanOrEqual(1);
    expect(f.box.x).toBeGreaterThanOrEqual(0);
    expect(f.box.y).toBeGreaterThanOrEqual(0);
    expect(f.box.x + f.box.width).toBeLessThanOrEqual(1.0001);
    expect(f.box.y + f.box.height).toBeLessThanOrEqual(1.0001);
  }
}

describe('tiles and merging', () => {
  test('tiles cover the picture, overlapping by a quarter; a small picture has none', () => {
    expect(tilesOf(512, 300)).toEqual([]);
    for (const [w, h] of [
      [2048, 1536],
      [1920, 1440],
      [2048, 512],
      [700, 513],
    ] as const) {
      const tiles = tilesOf(w, h);
      for (const t of tiles) {
        expect(t.width).toBeLessThanOrEqual(TILE);
        expect(t.x + t.width).toBeLessThanOrEqual(w);
        expect(t.y + t.height).toBeLessThanOrEqual(h);
      }
      // Every pixel in some tile, and every face of up to a quarter tile whole in one of them.
      for (const x of [0, Math.floor(w / 3), w - 1])
        for (const y of [0, Math.floor(h / 2), h - 1])
          expect(tiles.some((t) => x >= t.x && x < t.x + t.width && y >= t.y && y < t.y + t.height)).toBe(true);
      const xs = [...new Set(tiles.map((t) => t.x))].sort((a, b) => a - b);
      for (let i = 1; i < xs.length; i++) expect(xs[i - 1]! + TILE - xs[i]!).toBeGreaterThanOrEqual(TILE / 4);
    }
  });

  const face = (x: number, y: number, size: number, score = 1): Face => ({
    box: { x, y, width: size, height: size },
    score,
  });
  const boxes = (faces: Face[]): Box[] => faces.map((f) => f.box);

  test('a face seen whole and in two tiles is one face, the tile box kept', () => {
    const merged = merge([face(98, 102, 60, 0.99)], [face(100, 100, 58, 0.9), face(101, 99, 59, 0.95)]);
    expect(boxes(merged)).toEqual([face(101, 99, 59).box]);
  });

  test('a whole-picture box drawn between two faces goes; the two stay', () => {
    // A man behind a woman in the group photo, which its 1024 px copy saw as one box across both faces.
    const merged = merge([face(782, 423, 130)], [face(798, 392, 105), face(797, 483, 120)]);
    expect(boxes(merged)).toEqual([face(797, 483, 120).box, face(798, 392, 105).box]);
  });

  test('a large face replaces the parts of it a tile saw; faces apart from each other all stay, left to right', () => {
    const merged = merge(
      [face(1000, 100, 500), face(10, 10, 50)],
      [face(1100, 200, 80), face(1300, 250, 90), face(600, 40, 40)],
    );
    expect(boxes(merged)).toEqual([face(10, 10, 50).box, face(600, 40, 40).box, face(1000, 100, 500).box]);
  });
});

describe('the offline detector', () => {
  const vision = createHumanVision({ minScore: 0.3 });

  test(`the group photo: ${GROUP_FACES} faces by eye, the count within 20 %`, { timeout: 120_000 }, async () => {
    const r = await vision.analyze(await asService(GROUP), { signal: signal() });
    expect(within20(r.faces!.length, GROUP_FACES), `${r.faces!.length} faces`).toBe(true);
    expectBoxesInPicture(r);
    const xs = r.faces!.map((f) => f.box.x);
    expect(xs).toEqual([...xs].sort((a, b) => a - b));
    expect(r.labels[0]).toMatchObject({ name: 'person' });
  });

  test(
    'the group three times across a wide picture: its small faces are found in tiles',
    { timeout: 120_000 },
    async () => {
      const input = await asService(panorama);
      const r = await vision.analyze(input, { signal: signal() });
      expect(within20(r.faces!.length, 3 * GROUP_FACES), `${r.faces!.length} faces`).toBe(true);
      expectBoxesInPicture(r);
      // Each third holds its share.
      for (let i = 0; i < 3; i++) {
        const inThird = r.faces!.filter((f) => f.box.x >= i / 3 && f.box.x < (i + 1) / 3).length;
        expect(within20(inThird, GROUP_FACES), `${inThird} faces in third ${i + 1}`).toBe(true);
      }
    },
  );

  test('each portrait has exactly one face', { timeout: 120_000 }, async () => {
    for (const file of PORTRAITS) {
      const r = await vision.analyze(await asService(file), { signal: signal() });
      expect(r.faces, path.basename(file)).toHaveLength(1);
      // A portrait's face is large: a tenth of its width at least.
      expect(r.faces![0]!.box.width, path.basename(file)).toBeGreaterThan(0.1);
    }
  });

  test('pictures with nobody in them have no face', { timeout: 120_000 }, async () => {
    for (const file of NOBODY) {
      const r = await vision.analyze(await asService(file), { signal: signal() });
      expect(r.faces, path.basename(file)).toEqual([]);
    }
  });
});

describe('analyzeImage', () => {
  let runtime: Runtime;
  beforeAll(async () => {
    runtime = await createRuntime(loadConfig({ DATA_DIR: path.join(dir, 'data') }), createLogger('silent'));
  });
  afterAll(async () => runtime?.close());

  const analysisOf = async (jobId: string, file: string) => {
    const doc = await runtime.runner.run({ jobId, file: { path: file } });
    expect(doc.steps.analyzeImage?.status).toBe('succeeded');
    return doc.results.analysis!;
  };

  test('faces with boxes in the original pixels, and their count', { timeout: 180_000 }, async () => {
    const a = await analysisOf('group', GROUP);
    expect(a.faceCount).toBe(a.faces!.length);
    expect(within20(a.faceCount!, GROUP_FACES)).toBe(true);
    for (const f of a.faces!) {
      expect(Number.isInteger(f.box.x) && Number.isInteger(f.box.width)).toBe(true);
      expect(f.box.x + f.box.width).toBeLessThanOrEqual(1920);
      expect(f.box.y + f.box.height).toBeLessThanOrEqual(1440);
      // The faces of this group are 100 to 200 px wide in the 1920 px original.
      expect(f.box.width).toBeGreaterThan(60);
      expect(f.box.width).toBeLessThan(260);
    }

    // Larger than the 2048 px copy the faces are found in: boxes still in the 5760 px original's pixels.
    const wide = await analysisOf('panorama', panorama);
    expect(within20(wide.faceCount!, 3 * GROUP_FACES)).toBe(true);
    const rightmost = Math.max(...wide.faces!.map((f) => f.box.x + f.box.width));
    expect(rightmost).toBeGreaterThan(5000);
    expect(rightmost).toBeLessThanOrEqual(5760);
    for (const f of wide.faces!) expect(f.box.width).toBeGreaterThan(60);

    // Turned on disk and stood up by EXIF: the same face, in the upright picture's pixels.
    const upright = (await analysisOf('upright', PORTRAITS[7]!)).faces!;
    const stood = (await analysisOf('turned', turned)).faces!;
    expect(upright).toHaveLength(1);
    expect(stood).toHaveLength(1);
    for (const k of ['x', 'y', 'width', 'height'] as const)
      expect(Math.abs(stood[0]!.box[k] - upright[0]!.box[k]), k).toBeLessThanOrEqual(12);
    // person-c is 1024 x 746 upright: a box within that, not within the 746 x 1024 stored on disk.
    expect(stood[0]!.box.x + stood[0]!.box.width).toBeLessThanOrEqual(1024);
    expect(stood[0]!.box.y + stood[0]!.box.height).toBeLessThanOrEqual(746);
  });
});
