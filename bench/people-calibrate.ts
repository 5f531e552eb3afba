/**
 * Face descriptor distances on the portrait corpus (faces/person-*.jpg: four pictures of A, three of B, one of C),
 * within one person and between people: what PEOPLE_MAX_DISTANCE (lib/people.ts) was chosen from. Also the group
 * photo's faces against the portraits (strangers).
 * Run: node --import tsx bench/people-calibrate.ts
 */
import path from 'node:path';
import sharp from 'sharp';
import { createHumanVision } from '../src/ai/human-vision.js';
import { faceDistance, PEOPLE_MAX_DISTANCE } from '../src/lib/people.js';

const CORPUS = process.env.MEDIA_CORPUS ?? path.resolve(import.meta.dirname, '..', '..', 'shared', 'corpus');
const NAMES = ['person-a-2', 'person-a-4', 'person-a-6', 'person-a-8', 'person-b-1', 'person-b-3', 'person-b-4'];
const vision = createHumanVision({ minScore: 0.3 });
const signal = new AbortController().signal;

/** Each face of a picture with its descriptor, as analyzeImage gets them (an upright copy of at most 2048 px). */
async function facesOf(name: string): Promise<Float32Array[]> {
  const { data, info } = await sharp(path.join(CORPUS, 'faces', `${name}.jpg`))
    .rotate()
    .resize(2048, 2048, { fit: 'inside', withoutEnlargement: true })
    .toColourspace('srgb')
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const detail = { data, width: info.width, height: info.height };
  const jpeg = await sharp(data, { raw: { width: info.width, height: info.height, channels: 3 } })
    .resize(1024, 1024, { fit: 'inside' })
    .jpeg()
    .toBuffer({ resolveWithObject: true });
  const seen = await vision.analyze(
    { image: jpeg.data, mime: 'image/jpeg', width: jpeg.info.width, height: jpeg.info.height, detail },
    { signal },
  );
  const boxes = (seen.faces ?? []).map((f) => f.box);
  return (await vision.describeFaces(detail, boxes, { signal })).filter((d): d is Float32Array => d !== null);
}

const portraits: { name: string; who: string; d: Float32Array }[] = [];
for (const name of [...NAMES, 'person-c']) {
  const [d] = await facesOf(name);
  if (d) portraits.push({ name, who: name.slice(7, 8), d });
  else console.log(`${name}: no face described`);
}
const same: number[] = [];
const apart: number[] = [];
for (const [i, a] of portraits.entries())
  for (const b of portraits.slice(i + 1)) {
    const d = faceDistance(a.d, b.d);
    (a.who === b.who ? same : apart).push(d);
    console.log(`${a.name}\t${b.name}\t${d.toFixed(3)}\t${a.who === b.who ? 'same' : 'different'}`);
  }
/** Per picture: the nearest other picture of the same person (what the nearest-face rule joins it by). */
for (const a of portraits) {
  const mates = portraits.filter((b) => b !== a && b.who === a.who).map((b) => faceDistance(a.d, b.d));
  if (mates.length) console.log(`${a.name}: nearest of the same person ${Math.min(...mates).toFixed(3)}`);
}
const group = await facesOf('group');
const strangers = group.flatMap((g) => portraits.map((p) => faceDistance(g, p.d)));
const f = (xs: number[], pick: (s: number[]) => number) => pick([...xs].sort((x, y) => x - y)).toFixed(3);
console.log(`same person: ${same.length} pairs, ${f(same, (s) => s[0]!)} to ${f(same, (s) => s.at(-1)!)}`);
console.log(`different people: ${apart.length} pairs, nearest ${f(apart, (s) => s[0]!)}`);
console.log(`group faces (${group.length}) against the portraits: nearest ${f(strangers, (s) => s[0]!)}`);
console.log(`PEOPLE_MAX_DISTANCE ${PEOPLE_MAX_DISTANCE}`);
