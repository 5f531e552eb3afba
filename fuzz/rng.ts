/**
 * The fuzzer's only source of chance: a 32-bit PRNG seeded from (seed, case index), so case i of seed s draws the
 * same file and the same mutations whether it runs in a batch of 10,000 or alone.
 */

export type Rng = () => number;

/** mulberry32: small, fast and good enough to pick offsets; returns [0, 1). */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** murmur3's finaliser: neighbouring inputs (case 41, case 42) give unrelated outputs. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function caseRng(seed: number, index: number): Rng {
  return mulberry32(fmix32((seed >>> 0) ^ fmix32((index + 0x9e3779b9) >>> 0)));
}

/** A whole number in [0, n). */
export function int(rng: Rng, n: number): number {
  return Math.floor(rng() * n);
}

export function pick<T>(rng: Rng, items: readonly T[]): T {
  if (items.length === 0) throw new Error('pick from an empty list');
  return items[int(rng, items.length)]!;
}

export function chance(rng: Rng, p: number): boolean {
  return rng() < p;
}
