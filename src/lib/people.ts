/**
 * Faces into people, one owner at a time. A face descriptor is a unit vector (the description model's embedding,
 * normalised); the distance of two faces is the cosine distance of their descriptors, 0 (same) to 2 (opposite).
 *
 * The rule, applied as each job's faces are recorded: a face joins the person one of whose faces is nearest to it,
 * when that distance is at most PEOPLE_MAX_DISTANCE; otherwise it is a new person at once. Faces of one picture are
 * different people: they never join each other, nor a person another face of the same picture joined. People are
 * never merged or split automatically (a face between two people joins the nearer); POST /people/:id/merge does it.
 */

/** Numbers in a descriptor. */
export const DESCRIPTOR_LENGTH = 1024;

/**
 * Calibrated on the portrait corpus (bench/people-calibrate.ts, 2026-12-03): the nearest two portraits of
 * different people are 0.472 apart; portraits of one person chain together within 0.441, except one picture of
 * person B (0.469 from the nearest other). 0.45 keeps different people apart and leaves that picture a person of its
 * own (a merge joins it): a wrong join is worse than a split.
 */
export const PEOPLE_MAX_DISTANCE = 0.45;

/** Cosine distance of two unit descriptors. */
export function faceDistance(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += a[i]! * b[i]!;
  return 1 - dot;
}

/** A face of a job as recorded: see store/people-store.ts. */
export interface NewFace {
  /** The face's place in the job's `analysis.faces`. */
  index: number;
  /** In pixels of the upright original. */
  box: { x: number; y: number; width: number; height: number };
  score: number;
  /** Null when the description model saw no face in the box: the face is kept, in no person. */
  descriptor: Float32Array | null;
  /** The crop's artifact name (`face-<n>.jpg`). */
  crop: string;
}

export interface KnownFace {
  personId: number;
  descriptor: Float32Array;
}

/**
 * Where each of one picture's faces goes, in order: an existing person's id, `new` (a person of its own), or null
 * (no descriptor: kept, but in no person). Brute force over `known`: every descriptor of the owner.
 */
export function placeFaces(
  known: KnownFace[],
  faces: (Float32Array | null)[],
  maxDistance = PEOPLE_MAX_DISTANCE,
): (number | 'new' | null)[] {
  const taken = new Set<number>();
  return faces.map((descriptor) => {
    if (!descriptor) return null;
    let best: number | null = null;
    let bestDistance = Infinity;
    for (const k of known) {
      if (taken.has(k.personId)) continue;
      const d = faceDistance(descriptor, k.descriptor);
      if (d < bestDistance) [best, bestDistance] = [k.personId, d];
    }
    if (best === null || bestDistance > maxDistance) return 'new';
    taken.add(best);
    return best;
  });
}

/** Whether this machine stores numbers little-endian, as descriptors are kept: then they are copied, not converted. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** A descriptor as bytes (little-endian float32), as both stores keep it. */
export function descriptorBytes(d: Float32Array): Buffer {
  if (LITTLE_ENDIAN) return Buffer.from(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength));
  const out = Buffer.alloc(d.length * 4);
  d.forEach((v, i) => out.writeFloatLE(v, i * 4));
  return out;
}

/** The descriptor kept as `b`; its own copy (a database driver may reuse the buffer it read into). */
export function descriptorOfBytes(b: Buffer): Float32Array {
  if (b.length % 4 !== 0) throw new Error(`a face descriptor of ${b.length} bytes is not float32 values`);
  if (LITTLE_ENDIAN) return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
  const out = new Float32Array(b.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = b.readFloatLE(i * 4);
  return out;
}
