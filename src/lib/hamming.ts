/**
 * What near-duplicate lookup needs of perceptual hashes (lib/perceptual-hash.ts): the Hamming distance between two
 * and their four 16-bit parts. Multi-index hashing: two hashes within distance d agree within ⌊d/4⌋ bits on at least
 * one of their four parts, so a lookup reads only the rows whose parts are that close, through four indexes.
 */

/** A hash as 16 lower-case hex digits. */
export type PerceptualHash = string;

const HASH = /^[0-9a-f]{16}$/;

export function isPerceptualHash(value: unknown): value is PerceptualHash {
  return typeof value === 'string' && HASH.test(value);
}

/** The number of bits set in a 16-bit value. */
export function popcount16(n: number): number {
  n -= (n >> 1) & 0x5555;
  n = (n & 0x3333) + ((n >> 2) & 0x3333);
  n = (n + (n >> 4)) & 0x0f0f;
  return (n + (n >> 8)) & 0x1f;
}

/** The four 16-bit parts of a hash, most significant first. */
export function hashParts(hash: PerceptualHash): [number, number, number, number] {
  return [0, 4, 8, 12].map((i) => parseInt(hash.slice(i, i + 4), 16)) as [number, number, number, number];
}

/** The number of bits in which two hashes differ (0-64). */
export function hammingDistance(a: PerceptualHash, b: PerceptualHash): number {
  const pa = hashParts(a);
  const pb = hashParts(b);
  let d = 0;
  for (let i = 0; i < 4; i++) d += popcount16(pa[i]! ^ pb[i]!);
  return d;
}

/** Every 16-bit value within `radius` bits of `part` (radius 0-2: 1, 17 or 137 values), `part` first. */
export function partNeighbours(part: number, radius: number): number[] {
  const out = [part];
  if (radius >= 1) for (let i = 0; i < 16; i++) out.push(part ^ (1 << i));
  if (radius >= 2) for (let i = 0; i < 16; i++) for (let j = i + 1; j < 16; j++) out.push(part ^ (1 << i) ^ (1 << j));
  return out;
}

/** How far each part may be from the query's for a lookup of hashes within `distance` (pigeonhole over four). */
export function partRadius(distance: number): number {
  return Math.floor(distance / 4);
}
