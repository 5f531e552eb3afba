/**
 * Sentence ranking by centrality (LexRank): sentences are TF-IDF vectors of their content words, linked by cosine
 * similarity above a threshold, and PageRank over that graph scores the sentences most of the text agrees with.
 */
import { words } from './language.js';

export type TermVector = Map<string, number>;

/** Content words of a text, cut to a crude stem so that "compiler", "compilers" and "compiled" meet. */
export function terms(text: string, stops: Set<string>): string[] {
  return words(text)
    .filter((w) => w.length > 1 && !stops.has(w) && !/^\d+$/.test(w))
    .map((w) => (w.length > 4 ? w.replace(/(s|es|ed|ing|ly)$/, '') : w).slice(0, 7));
}

/** TF-IDF vectors of unit length, one per text; idf is taken over the texts themselves. */
export function tfidfVectors(texts: string[][]): TermVector[] {
  const df = new Map<string, number>();
  for (const t of texts) for (const w of new Set(t)) df.set(w, (df.get(w) ?? 0) + 1);
  const n = texts.length;
  return texts.map((t) => {
    const tf = new Map<string, number>();
    for (const w of t) tf.set(w, (tf.get(w) ?? 0) + 1);
    const v: TermVector = new Map();
    let norm = 0;
    for (const [w, f] of tf) {
      const x = f * Math.log(1 + n / (df.get(w) ?? 1));
      v.set(w, x);
      norm += x * x;
    }
    norm = Math.sqrt(norm) || 1;
    for (const [w, x] of v) v.set(w, x / norm);
    return v;
  });
}

export function cosine(a: TermVector, b: TermVector): number {
  const [small, large] = a.size <= b.size ? [a, b] : [b, a];
  let dot = 0;
  for (const [w, x] of small) dot += x * (large.get(w) ?? 0);
  return dot;
}

/** The sum of the vectors, of unit length: what the text is about as a whole. */
export function centroid(vectors: TermVector[]): TermVector {
  const sum: TermVector = new Map();
  for (const v of vectors) for (const [w, x] of v) sum.set(w, (sum.get(w) ?? 0) + x);
  const norm = Math.sqrt([...sum.values()].reduce((s, x) => s + x * x, 0)) || 1;
  for (const [w, x] of sum) sum.set(w, x / norm);
  return sum;
}

/**
 * PageRank over the similarity graph (edges weighted by cosine, those under `threshold` dropped), scaled so the mean
 * score is 1. A sentence linked to nothing keeps the teleport share only.
 */
export function lexRank(vectors: TermVector[], threshold = 0.1, damping = 0.85): number[] {
  const n = vectors.length;
  if (n === 0) return [];
  const edges: { to: number; w: number }[][] = vectors.map(() => []);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const w = cosine(vectors[i] as TermVector, vectors[j] as TermVector);
      if (w < threshold) continue;
      edges[i]?.push({ to: j, w });
      edges[j]?.push({ to: i, w });
    }
  }
  const out = edges.map((e) => e.reduce((s, x) => s + x.w, 0));
  let score = new Array<number>(n).fill(1 / n);
  for (let iter = 0; iter < 50; iter++) {
    const next = new Array<number>(n).fill((1 - damping) / n);
    let dangling = 0;
    for (let i = 0; i < n; i++) {
      const s = score[i] ?? 0;
      const total = out[i] ?? 0;
      if (total === 0) {
        dangling += s;
        continue;
      }
      for (const { to, w } of edges[i] ?? []) next[to] = (next[to] ?? 0) + (damping * s * w) / total;
    }
    for (let i = 0; i < n; i++) next[i] = (next[i] ?? 0) + (damping * dangling) / n;
    const delta = next.reduce((d, x, i) => d + Math.abs(x - (score[i] ?? 0)), 0);
    score = next;
    if (delta < 1e-6) break;
  }
  return score.map((s) => s * n);
}
