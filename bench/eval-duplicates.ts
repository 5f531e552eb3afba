/**
 * npm run eval:duplicates: the near-duplicate threshold on the calibration set (test/support/duplicate-calibration.ts):
 * precision and recall at every threshold around the chosen one, by kind of pair, and the pairs it gets wrong.
 */
import path from 'node:path';
import { NEAR_DUPLICATE_DISTANCE } from '../src/store/duplicates.js';
import { calibrationPairs, score } from '../test/support/duplicate-calibration.js';

const CORPUS = process.env.MEDIA_CORPUS ?? path.resolve(import.meta.dirname, '..', '..', 'shared', 'corpus');
const pairs = await calibrationPairs(CORPUS);
const pct = (n: number): string => `${(n * 100).toFixed(1)} %`;

console.log(
  `${pairs.filter((p) => p.duplicate).length} copies, ${pairs.filter((p) => !p.duplicate).length} other pairs`,
);
console.log('threshold  precision  recall   (TP FN FP TN)');
for (let t = 4; t <= 14; t++) {
  const s = score(pairs, t);
  const mark = t === NEAR_DUPLICATE_DISTANCE ? '  <- NEAR_DUPLICATE_DISTANCE' : '';
  console.log(
    `${String(t).padStart(9)}  ${pct(s.precision).padStart(9)}  ${pct(s.recall).padStart(7)}   ` +
      `(${s.truePositives} ${s.falseNegatives} ${s.falsePositives} ${s.trueNegatives})${mark}`,
  );
}
console.log(`\nby kind, at ${NEAR_DUPLICATE_DISTANCE}: called duplicates / pairs, distances (min-max)`);
const kinds = [...new Set(pairs.map((p) => p.kind))];
for (const kind of kinds) {
  const of = pairs.filter((p) => p.kind === kind);
  const called = of.filter((p) => p.distance <= NEAR_DUPLICATE_DISTANCE).length;
  const d = of.map((p) => p.distance);
  console.log(`  ${kind}: ${called}/${of.length}  (${Math.min(...d)}-${Math.max(...d)})`);
}
console.log('\nwrong at the threshold:');
for (const p of pairs) {
  if (p.duplicate !== p.distance <= NEAR_DUPLICATE_DISTANCE) console.log(`  ${p.kind}  ${p.a} ~ ${p.b}: ${p.distance}`);
}
