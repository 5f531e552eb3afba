/**
 * Duplicates across jobs, the same on every backend. A finished job (completed, or completed with errors) is
 * registered in its owner's scope (its `user`; jobs without one share a scope) with its sha256 and, for an image, its
 * perceptual hash split in four 16-bit parts, each in an indexed column (multi-index hashing, lib/hamming.ts).
 * saveFinished looks the job up in the same transaction that stores it and lists what it found in the document's
 * `results.duplicates`: a pair of duplicates is listed by whichever of the two finished second.
 */
import {
  hammingDistance,
  hashParts,
  isPerceptualHash,
  partNeighbours,
  partRadius,
  popcount16,
  type PerceptualHash,
} from '../lib/hamming.js';
import type { Duplicate, FinishedJob, JobDocument } from '../lib/types.js';

/**
 * The largest dHash distance of a near duplicate. Chosen on the calibration set (npm run eval:duplicates,
 * docs/benchmarks.md): resized, re-encoded, cropped and EXIF-rotated copies fall within it, bursts and other photos
 * of the same scene beyond it. At most 11, so that a lookup reads parts at most 2 bits away (137 values a part).
 */
export const NEAR_DUPLICATE_DISTANCE = 10;

/** At most this many duplicates are listed in a document (the closest); GET /jobs/:id/duplicates has them all. */
export const MAX_LISTED_DUPLICATES = 50;

/** At most this many are answered by GET /jobs/:id/duplicates, closest first. */
export const MAX_DUPLICATES = 500;

/** What a finished job is registered with. */
export interface Fingerprint {
  owner: string;
  sha256: string;
  hash: PerceptualHash | null;
}

/** A registered job, as a lookup reads it. `seq` orders registrations (the earlier job has the smaller). */
export interface HashRow {
  jobId: string;
  sha256: string;
  hash: PerceptualHash | null;
  seq: number;
}

/** A duplicate of a job, with whether it was registered before (`earlier`) or after it (`later`). */
export interface RelatedDuplicate extends Duplicate {
  relation: 'earlier' | 'later';
}

/** The scope of an owner: the user's id, or '' for jobs without a user (ids are never empty). */
export function ownerOf(user: { id: string } | null | undefined): string {
  return user?.id ?? '';
}

/** What the job is registered with, or null when it is not registered (it failed, or has no sha256). */
export function fingerprintOf(job: FinishedJob): Fingerprint | null {
  if (job.status !== 'completed' && job.status !== 'completed_with_errors') return null;
  const sha256 = job.fileInfo?.sha256;
  if (!sha256 || !/^[0-9a-f]{64}$/.test(sha256)) return null;
  const hash = job.results.perceptualHash?.value;
  return { owner: ownerOf(job.user), sha256, hash: isPerceptualHash(hash) ? hash : null };
}

/** The values each of the four part columns may hold for a row within NEAR_DUPLICATE_DISTANCE of `hash`. */
export function partCandidates(hash: PerceptualHash): number[][] {
  const radius = partRadius(NEAR_DUPLICATE_DISTANCE);
  return hashParts(hash).map((part) => partNeighbours(part, radius));
}

/**
 * The first pass of a near lookup: of the rows the part indexes found (`[seq, p0, p1, p2, p3]`, read from the
 * indexes alone), the `seq` of those within NEAR_DUPLICATE_DISTANCE of `hash`. Only those rows are then read whole.
 */
export function nearSeqs(hash: PerceptualHash, rows: number[][]): number[] {
  const [q0, q1, q2, q3] = hashParts(hash);
  const near = new Set<number>();
  for (const [seq, p0, p1, p2, p3] of rows) {
    const d = popcount16(p0! ^ q0) + popcount16(p1! ^ q1) + popcount16(p2! ^ q2) + popcount16(p3! ^ q3);
    if (d <= NEAR_DUPLICATE_DISTANCE) near.add(seq!);
  }
  return [...near];
}

/**
 * The duplicates of `fp` among `rows` (the candidates a lookup read: same sha256, or a part close enough), the job
 * itself left out: exact ones first, then the nearest, each job once.
 */
export function duplicatesAmong(fp: Fingerprint, selfId: string, rows: HashRow[]): (Duplicate & { seq: number })[] {
  const found = new Map<string, Duplicate & { seq: number }>();
  for (const row of rows) {
    if (row.jobId === selfId || found.has(row.jobId)) continue;
    if (row.sha256 === fp.sha256) {
      found.set(row.jobId, { jobId: row.jobId, kind: 'exact', distance: 0, seq: row.seq });
      continue;
    }
    if (!fp.hash || !row.hash) continue;
    const distance = hammingDistance(fp.hash, row.hash);
    if (distance <= NEAR_DUPLICATE_DISTANCE)
      found.set(row.jobId, { jobId: row.jobId, kind: 'near', distance, seq: row.seq });
  }
  return [...found.values()].sort(
    (a, b) => (a.kind === b.kind ? 0 : a.kind === 'exact' ? -1 : 1) || a.distance - b.distance || a.seq - b.seq,
  );
}

/** What the document of a job found `listed` to be its duplicates shows (saveFinished's change, applied after). */
export function listDuplicates(listed: Duplicate[]): (doc: JobDocument) => void {
  return (doc) => {
    const { duplicates: _, ...results } = doc.results;
    doc.results = listed.length
      ? {
          ...results,
          duplicates: listed
            .slice(0, MAX_LISTED_DUPLICATES)
            .map(({ jobId, kind, distance }) => ({ jobId, kind, distance })),
        }
      : results;
  };
}

/** The duplicates of a registered job both ways, for GET /jobs/:id/duplicates. */
export function related(self: HashRow, owner: string, rows: HashRow[]): RelatedDuplicate[] {
  return duplicatesAmong({ owner, sha256: self.sha256, hash: self.hash }, self.jobId, rows)
    .slice(0, MAX_DUPLICATES)
    .map(({ seq, ...d }) => ({ ...d, relation: seq < self.seq ? 'earlier' : 'later' }));
}

/** The SQL condition on `column` (a job id) of the `duplicates` filter, for both backends. */
export function duplicatesFilter(column: string, listed: boolean): string {
  return `${column} ${listed ? '' : 'NOT '}IN (SELECT job_id FROM job_hashes WHERE listed > 0)`;
}
