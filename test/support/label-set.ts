/**
 * The hand-labelled photos of test/fixtures/labels: loading them, preparing each as analyzeImage does, and scoring
 * a detector's labels against them. Used by `npm run eval:labels` and by the label tests.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { z } from 'zod';
import type { VisionInput } from '../../src/ai/types.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const LABELS_DIR = path.join(ROOT, 'test', 'fixtures', 'labels');
const CORPUS = process.env.MEDIA_CORPUS ?? path.resolve(ROOT, '..', 'shared', 'corpus');

const className = z.string().regex(/^[a-z][a-z ]{1,30}$/);
const photoSchema = z.object({
  what: z.string().min(1).max(200),
  /** The picture's main subjects: labels a user would expect. */
  main: z.array(className).max(10),
  /** Other things really in the picture: reporting them is right, missing them is no fault. */
  present: z.array(className).max(20),
  /** Labels the raw detector gave that are wrong here: must never be reported. */
  absent: z.array(className).max(20),
  heldOut: z.boolean(),
});
const setSchema = z.object({
  photos: z.record(
    // A fixture in this folder, or a file of the shared corpus by its path there.
    z.string().regex(/^(corpus:(image|faces)\/)?[a-z0-9][a-z0-9.-]{0,80}\.(jpe?g|png|webp|avif|tif)$/),
    photoSchema,
  ),
});

export type LabelledPhoto = z.infer<typeof photoSchema> & { file: string };

export async function loadLabelSet(): Promise<LabelledPhoto[]> {
  const raw = JSON.parse(await fs.readFile(path.join(LABELS_DIR, 'labels.json'), 'utf8')) as unknown;
  const set = setSchema.parse(raw);
  return Object.entries(set.photos).map(([file, photo]) => {
    const right = new Set([...photo.main, ...photo.present]);
    const clash = photo.absent.find((l) => right.has(l));
    if (clash) throw new Error(`labels.json: ${file} lists "${clash}" as both right and wrong`);
    return { file, ...photo };
  });
}

export function photoPath(file: string): string {
  return file.startsWith('corpus:') ? path.join(CORPUS, file.slice('corpus:'.length)) : path.join(LABELS_DIR, file);
}

/** What analyzeImage hands the model: upright, at most 1024 px, JPEG at quality 85. */
export async function asModelInput(file: string): Promise<VisionInput> {
  const { data, info } = await sharp(file)
    .autoOrient()
    .resize(1024, 1024, { fit: 'inside', withoutEnlargement: true })
    .toColourspace('srgb')
    .removeAlpha()
    .jpeg({ quality: 85 })
    .toBuffer({ resolveWithObject: true });
  return { image: data, mime: 'image/jpeg', width: info.width, height: info.height };
}

/** A labelled photo (by its key in labels.json) as analyzeImage hands it to the model. */
export function prepare(file: string): Promise<VisionInput> {
  return asModelInput(photoPath(file));
}

export interface LabelScore {
  /** Reported labels that are in the picture, over all reported labels. */
  precision: number;
  /** Main subjects reported, over all main subjects. */
  recall: number;
  reported: number;
  wrong: { file: string; name: string; score: number }[];
  missed: { file: string; name: string }[];
  mains: number;
}

/** Scores the labels reported for each photo (by file) against the hand labels. */
export function scoreLabels(
  photos: LabelledPhoto[],
  reported: ReadonlyMap<string, { name: string; score: number }[]>,
): LabelScore {
  let right = 0;
  let total = 0;
  let mains = 0;
  const wrong: LabelScore['wrong'] = [];
  const missed: LabelScore['missed'] = [];
  for (const photo of photos) {
    const labels = reported.get(photo.file) ?? [];
    const ok = new Set([...photo.main, ...photo.present]);
    for (const l of labels) {
      total++;
      if (ok.has(l.name)) right++;
      else wrong.push({ file: photo.file, ...l });
    }
    const names = new Set(labels.map((l) => l.name));
    for (const m of photo.main) {
      mains++;
      if (!names.has(m)) missed.push({ file: photo.file, name: m });
    }
  }
  return {
    // No label at all is no wrong label.
    precision: total ? right / total : 1,
    recall: mains ? (mains - missed.length) / mains : 1,
    reported: total,
    wrong,
    missed,
    mains,
  };
}
