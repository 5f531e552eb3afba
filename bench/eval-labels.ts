/**
 * How far the offline detector's labels can be trusted: the hand-labelled photos of test/fixtures/labels, each run
 * through the detector as analyzeImage runs it, with the per-class calibration (src/ai/label-calibration.ts) and
 * without it (one threshold, VISION_MIN_SCORE's default). Prints the precision of the reported labels and the recall
 * of the main subjects on the held-out part and on the calibration part, then every wrong label and missed subject
 * of the held-out part.
 *
 *   npm run eval:labels            # the figures
 *   npm run eval:labels -- --fit   # also a calibration table fitted on the calibration part, to paste in
 */
import { createHumanVision } from '../src/ai/human-vision.js';
import { keepLabel, type LabelCalibration } from '../src/ai/label-calibration.js';
import { type LabelledPhoto, type LabelScore, loadLabelSet, prepare, scoreLabels } from '../test/support/label-set.js';

/** VISION_MIN_SCORE's default. */
const MIN_SCORE = 0.3;
/** Lowest score the raw passes keep: fitting needs the wrong labels under the threshold too. */
const RAW_FLOOR = 0.05;
/** Floors are multiples of this, rounded up: a margin over the worst wrong score seen. */
const STEP = 0.05;
/** No face makes a person label: the detector's own person scores. */
const NO_FACES: LabelCalibration = { floors: {}, otherwise: 0, faceAsPerson: 2 };

type Labels = { name: string; score: number }[];
interface Raw {
  /** The object detector's labels alone. */
  objects: Labels;
  /** The best face score, where it outscores the detector's own person label. */
  face: number;
}

const stepUp = (x: number): number => Math.round((Math.floor(x / STEP + 1e-9) + 1) * STEP * 100) / 100;

/**
 * The table from the calibration part: the common floor is the score at which the object labels' pooled precision
 * is highest; a class with a wrong label at or over that floor gets its own, one step over its worst wrong score; a
 * face makes a person label one step over the best face found on a picture with nobody in it.
 */
function fit(photos: LabelledPhoto[], raw: ReadonlyMap<string, Raw>): LabelCalibration {
  const scored = photos.flatMap((photo) => {
    const ok = new Set([...photo.main, ...photo.present]);
    return (raw.get(photo.file)?.objects ?? []).map((l) => ({ ...l, right: ok.has(l.name) }));
  });
  let otherwise = MIN_SCORE;
  let best = -1;
  for (let floor = MIN_SCORE; floor <= 0.6 + 1e-9; floor = Math.round((floor + STEP) * 100) / 100) {
    const kept = scored.filter((l) => l.score >= floor);
    const precision = kept.filter((l) => l.right).length / Math.max(1, kept.length);
    if (precision > best) [best, otherwise] = [precision, floor];
  }
  const floors: Record<string, number> = {};
  for (const l of scored) {
    if (!l.right && l.score >= otherwise) floors[l.name] = Math.max(floors[l.name] ?? 0, stepUp(l.score));
  }
  let worstFace = 0;
  for (const photo of photos) {
    const face = raw.get(photo.file)?.face ?? 0;
    if (!photo.main.includes('person') && !photo.present.includes('person')) worstFace = Math.max(worstFace, face);
  }
  const sorted = Object.fromEntries(Object.entries(floors).sort(([a], [b]) => a.localeCompare(b)));
  return { floors: sorted, otherwise, faceAsPerson: Math.max(otherwise, stepUp(worstFace)) };
}

function row(name: string, s: LabelScore): string {
  const wrong = s.reported - Math.round(s.precision * s.reported);
  return `| ${name} | ${s.precision.toFixed(3)} | ${s.recall.toFixed(3)} | ${s.reported} | ${wrong} | ${s.mains - s.missed.length}/${s.mains} |`;
}

async function main(): Promise<void> {
  const photos = await loadLabelSet();
  const signal = new AbortController().signal;
  const calibrated = createHumanVision({ minScore: MIN_SCORE });
  const merged = createHumanVision({ minScore: RAW_FLOOR, maxLabels: 100, labelCalibration: null });
  const objectsOnly = createHumanVision({ minScore: RAW_FLOOR, maxLabels: 100, labelCalibration: NO_FACES });
  const seen = new Map<string, Labels>();
  const rawSeen = new Map<string, Labels>();
  const raw = new Map<string, Raw>();
  for (const photo of photos) {
    const input = await prepare(photo.file);
    seen.set(photo.file, (await calibrated.analyze(input, { signal })).labels);
    const all = (await merged.analyze(input, { signal })).labels;
    const objects = (await objectsOnly.analyze(input, { signal })).labels;
    rawSeen.set(photo.file, all);
    const person = (ls: Labels): number => ls.find((l) => l.name === 'person')?.score ?? 0;
    raw.set(photo.file, { objects, face: person(all) > person(objects) ? person(all) : 0 });
  }
  // The uncalibrated figures: one threshold for every class, faces always a person, as before the table existed.
  const oneThreshold = new Map([...rawSeen].map(([f, ls]) => [f, ls.filter((l) => keepLabel(l, MIN_SCORE, null))]));

  const heldOut = photos.filter((p) => p.heldOut);
  const calibration = photos.filter((p) => !p.heldOut);
  console.log(
    `${photos.length} photos: ${heldOut.length} held out, ${calibration.length} for calibration; minimum score ${MIN_SCORE}`,
  );
  console.log('| part | precision | recall of main subjects | labels | wrong | main subjects found |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  const held = scoreLabels(heldOut, seen);
  console.log(row('held out, calibrated', held));
  console.log(row('held out, one threshold', scoreLabels(heldOut, oneThreshold)));
  console.log(row('calibration part, calibrated', scoreLabels(calibration, seen)));
  console.log(row('calibration part, one threshold', scoreLabels(calibration, oneThreshold)));
  for (const w of held.wrong) console.log(`held out, wrong: ${w.file}: ${w.name} ${w.score}`);
  for (const m of held.missed) {
    const best = rawSeen.get(m.file)?.find((l) => l.name === m.name)?.score;
    console.log(`held out, missed: ${m.file}: ${m.name} (raw score ${best ?? `< ${RAW_FLOOR}`})`);
  }
  if (process.argv.includes('--fit')) {
    const table = fit(calibration, raw);
    console.log('fitted on the calibration part:');
    console.log(JSON.stringify(table, null, 2));
  }
}

await main();
