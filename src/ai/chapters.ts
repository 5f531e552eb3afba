/**
 * Chapters of a timed transcript by topic segmentation, after TextTiling (Hearst, 1997): at each pause between
 * segments, the words of the half-minute before are compared with those of the half-minute after; where that
 * similarity dips deepest, the topic changed. Each chapter is titled with its most distinctive words.
 */
import { words } from './language.js';
import { cosine, terms, type TermVector } from './textrank.js';
import type { TranscriptSegment } from './types.js';

/** Recordings shorter than this have no chapters. */
export const MIN_CHAPTERED_SEC = 120;

export function chaptersOf(segments: TranscriptSegment[], stops: Set<string>): { start: number; title: string }[] {
  const segs = segments.filter((s) => s.text.trim());
  const first = segs[0];
  const last = segs.at(-1);
  if (!first || !last || last.end - first.start < MIN_CHAPTERED_SEC) return [];
  const duration = last.end - first.start;
  const window = Math.max(20, Math.min(60, duration / 8));
  const minChapter = Math.max(30, duration / 12);
  const maxChapters = Math.min(12, Math.max(2, Math.floor(duration / 60)));
  const segTerms = segs.map((s) => terms(s.text, stops));

  // Similarity across each pause between segments.
  const gaps: { at: number; index: number; sim: number }[] = [];
  for (let i = 1; i < segs.length; i++) {
    const at = (segs[i] as TranscriptSegment).start;
    const before: string[] = [];
    const after: string[] = [];
    segs.forEach((s, k) => {
      if (k < i && s.end > at - window) before.push(...(segTerms[k] ?? []));
      else if (k >= i && s.start < at + window) after.push(...(segTerms[k] ?? []));
    });
    gaps.push({ at, index: i, sim: cosine(counts(before), counts(after)) });
  }
  // Depth: how far the similarity climbs again on either side of a dip.
  const depths = gaps.map((g, i) => {
    let left = g.sim;
    for (let k = i - 1; k >= 0 && (gaps[k]?.sim ?? 0) >= left; k--) left = gaps[k]?.sim ?? left;
    let right = g.sim;
    for (let k = i + 1; k < gaps.length && (gaps[k]?.sim ?? 0) >= right; k++) right = gaps[k]?.sim ?? right;
    return { ...g, depth: left - g.sim + (right - g.sim) };
  });
  const mean = depths.reduce((s, d) => s + d.depth, 0) / Math.max(1, depths.length);
  const sd = Math.sqrt(depths.reduce((s, d) => s + (d.depth - mean) ** 2, 0) / Math.max(1, depths.length));
  const cuts: { at: number; index: number }[] = [];
  for (const d of [...depths].sort((a, b) => b.depth - a.depth)) {
    if (cuts.length >= maxChapters - 1 || d.depth < Math.max(0.1, mean + sd / 2)) break;
    if (d.at - first.start < minChapter || last.end - d.at < minChapter) continue;
    if (cuts.some((c) => Math.abs(c.at - d.at) < minChapter)) continue;
    cuts.push(d);
  }
  cuts.sort((a, b) => a.index - b.index);

  const bounds = [0, ...cuts.map((c) => c.index), segs.length];
  const parts = bounds.slice(0, -1).map((from, k) => segs.slice(from, bounds[k + 1]));
  const titles = titlesOf(parts, stops);
  return parts.map((part, k) => ({
    start: Math.round((part[0]?.start ?? 0) * 10) / 10,
    title: titles[k] ?? `Part ${k + 1}`,
  }));
}

function counts(list: string[]): TermVector {
  const v: TermVector = new Map();
  for (const w of list) v.set(w, (v.get(w) ?? 0) + 1);
  const norm = Math.sqrt([...v.values()].reduce((s, x) => s + x * x, 0)) || 1;
  for (const [w, x] of v) v.set(w, x / norm);
  return v;
}

/** Each part's three words most its own (frequent in it, rare in the others), as they were spoken. */
function titlesOf(parts: TranscriptSegment[][], stops: Set<string>): string[] {
  const perPart = parts.map((part) => {
    const surface = new Map<string, Map<string, number>>();
    const tf = new Map<string, number>();
    for (const seg of part) {
      for (const w of words(seg.text)) {
        const [stem] = terms(w, stops);
        if (!stem || w.length < 3) continue;
        tf.set(stem, (tf.get(stem) ?? 0) + 1);
        const forms = surface.get(stem) ?? new Map<string, number>();
        forms.set(w, (forms.get(w) ?? 0) + 1);
        surface.set(stem, forms);
      }
    }
    return { tf, surface };
  });
  return perPart.map(({ tf, surface }, k) => {
    const best = [...tf]
      .map(([stem, f]) => {
        const elsewhere = perPart.filter((p, j) => j !== k && p.tf.has(stem)).length;
        return { stem, score: f * Math.log(1 + parts.length / (1 + elsewhere)) };
      })
      .filter((x) => (tf.get(x.stem) ?? 0) >= 2 || parts.length === 1)
      .sort((a, b) => b.score - a.score || a.stem.localeCompare(b.stem))
      .slice(0, 3)
      .map(
        ({ stem }) => [...(surface.get(stem) ?? new Map<string, number>())].sort((a, b) => b[1] - a[1])[0]?.[0] ?? stem,
      );
    const title = best.join(', ');
    return title ? title.charAt(0).toUpperCase() + title.slice(1) : '';
  });
}
