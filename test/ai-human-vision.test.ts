import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import sharp from 'sharp';
import { beforeAll, describe, expect, test } from 'vitest';
import { createHumanVision } from '../src/ai/human-vision.js';
import type { VisionInput, VisionResult } from '../src/ai/types.js';
import { CORPUS } from './helpers.js';

const MIN_SCORE = 0.3;

/** What the service hands the model: upright, at most 1024 px, JPEG (see analyzeImage). */
async function asService(file: string): Promise<VisionInput> {
  const { data, info } = await sharp(path.join(CORPUS, 'image', file))
    .rotate()
    .resize(1024, 1024, { fit: 'inside', withoutEnlargement: true })
    .jpeg({ quality: 85 })
    .toBuffer({ resolveWithObject: true });
  return { image: data, mime: 'image/jpeg', width: info.width, height: info.height };
}

const signal = (): AbortSignal => new AbortController().signal;
const names = (r: VisionResult): string[] => r.labels.map((l) => l.name);

describe('human vision (offline detector)', () => {
  // What the pictures show, looked at by eye:
  const photos = {
    /** A wedding: bride, groom and best man facing the camera, a photographer at the left edge. */
    wedding: 'camera-canon-ixus.jpg',
    /** A park: a man bending over a baby in a pushchair, a small dog, a bench. */
    park: 'cmyk-no-profile.jpg',
    /** Hillside farmhouses and trees; nobody in it. */
    village: 'camera-gps-dscn0010.jpg',
    /** A blossoming tree against the sky; nobody in it. */
    tree: 'photo.webp',
    /** A waterfall in a rainforest with red flowers in front; nobody in it. */
    waterfall: 'landscape-exif-orientation-5.jpg',
    /** Despite its name: a smooth pink blur with a vignette; nothing in it. */
    blur: 'flowers.jpeg',
  };
  const inputs = {} as Record<keyof typeof photos, VisionInput>;
  let grey: VisionInput;

  beforeAll(async () => {
    for (const [key, file] of Object.entries(photos)) inputs[key as keyof typeof photos] = await asService(file);
    const image = await sharp({ create: { width: 512, height: 512, channels: 3, background: '#808080' } })
      .png()
      .toBuffer();
    grey = { image, mime: 'image/png', width: 512, height: 512 };
  });

  test('concurrent first calls share one load, and give the same answer', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const vision = createHumanVision({ minScore: MIN_SCORE, log: pino({ level: 'debug' }, sink) });
    expect(vision.loadMs).toBeNull();
    const results = await Promise.all([1, 2, 3].map(() => vision.analyze(inputs.park, { signal: signal() })));
    expect(lines.filter((l) => l.includes('human vision loaded'))).toHaveLength(1);
    expect(vision.loadMs).toBeGreaterThan(0);
    expect(results[1]?.labels).toEqual(results[0]?.labels);
    expect(results[2]?.labels).toEqual(results[0]?.labels);
  });

  test('people, faces and a dog where they are', async () => {
    const vision = createHumanVision({ minScore: MIN_SCORE });
    const wedding = await vision.analyze(inputs.wedding, { signal: signal() });
    expect(names(wedding)).toContain('person');
    // The three facing the camera; the photographer's face is behind his camera.
    expect(wedding.faces).toHaveLength(3);

    const park = await vision.analyze(inputs.park, { signal: signal() });
    expect(names(park)).toEqual(expect.arrayContaining(['dog', 'person']));
    expect(names(park).indexOf('dog')).toBeLessThan(2);
  });

  test('no person in pictures with nobody in them', async () => {
    const vision = createHumanVision({ minScore: MIN_SCORE });
    for (const key of ['village', 'tree', 'waterfall'] as const) {
      const r = await vision.analyze(inputs[key], { signal: signal() });
      expect(names(r), key).not.toContain('person');
      expect(r.faces, key).toEqual([]);
    }
  });

  test('nothing in a blur or a flat grey square', async () => {
    const vision = createHumanVision({ minScore: MIN_SCORE });
    for (const input of [inputs.blur, grey]) {
      const r = await vision.analyze(input, { signal: signal() });
      expect(r.labels).toEqual([]);
      expect(r.tags).toEqual([]);
      expect(r.faces).toEqual([]);
    }
  });

  test('the result keeps its contract: scores, order, limits, usage', async () => {
    const vision = createHumanVision({ minScore: MIN_SCORE });
    const r = await vision.analyze(inputs.wedding, { signal: signal() });
    expect(r).toMatchObject({ provider: 'human', model: vision.model, caption: null, text: null, safety: null });
    expect(r.model).toContain('centernet');
    expect(r.tags).toEqual(names(r));
    expect(new Set(r.tags).size).toBe(r.tags.length);
    for (const l of r.labels) {
      expect(l.score).toBeGreaterThanOrEqual(MIN_SCORE);
      expect(l.score).toBeLessThanOrEqual(1);
      expect(Math.round(l.score * 1000) / 1000).toBe(l.score);
    }
    const scores = r.labels.map((l) => l.score);
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
    expect(r.usage).toMatchObject({ inputTokens: 0, outputTokens: 0, totalTokens: 0, calls: 1 });
    expect(r.usage.latencyMs).toBeGreaterThan(0);

    // A low threshold finds more, and maxLabels still holds.
    const many = await createHumanVision({ minScore: 0.05, maxLabels: 3, labelCalibration: null }).analyze(
      inputs.wedding,
      {
        signal: signal(),
      },
    );
    expect(many.labels).toHaveLength(3);
    expect(many.labels.every((l) => l.score >= 0.05)).toBe(true);
  });

  test('tensors do not pile up over many calls', { timeout: 600_000 }, async () => {
    const vision = createHumanVision({ minScore: MIN_SCORE });
    await vision.analyze(inputs.park, { signal: signal() });
    const before = vision.numTensors;
    expect(before).toBeGreaterThan(0);
    for (let i = 0; i < 20; i++) {
      await vision.analyze(i % 2 === 0 ? inputs.wedding : grey, { signal: signal() });
    }
    expect(vision.numTensors).toBe(before);
  });

  test('an aborted signal rejects with its reason', async () => {
    const vision = createHumanVision({ minScore: MIN_SCORE });
    const before = new AbortController();
    const reason = new Error('cancelled before');
    before.abort(reason);
    await expect(vision.analyze(inputs.park, { signal: before.signal })).rejects.toBe(reason);

    // Aborted once the call is under way: detection is not interruptible, but the call still fails.
    const during = new AbortController();
    const pending = vision.analyze(inputs.park, { signal: during.signal });
    const late = new Error('cancelled during');
    during.abort(late);
    await expect(pending).rejects.toBe(late);
  });
});
