/**
 * Faces and the people they form (lib/people.ts has the rule), per owner: the job's `user` id, or one shared scope
 * for jobs without one. Kept in the job store's database, beside the jobs; a job's delete removes its faces, and a
 * person left without faces goes with them.
 *
 * Atomic, whatever the backend: recordFaces writes a job's faces once (keyed by job id and face index) and places them
 * in people in the same transaction, serialised per owner, so a process killed meanwhile leaves all of them or none,
 * and two jobs of one owner never both start a person for the same face.
 */
import { descriptorBytes, type NewFace } from '../lib/people.js';
import type { Face } from '../lib/types.js';
import type { FaceSink } from '../nodes/index.js';

export type { NewFace };

export interface StoredFace {
  jobId: string;
  index: number;
  box: Face['box'];
  score: number;
  crop: string;
  personId: number | null;
}

/** A job's face, as GET /jobs/:id/faces shows it: `described` is false once its person was deleted (or never). */
export interface JobFace extends StoredFace {
  described: boolean;
}

export interface PersonSummary {
  id: number;
  name: string | null;
  faceCount: number;
  /** The best-scored face, whose crop stands for the person. */
  cover: { jobId: string; crop: string } | null;
  jobIds: string[];
}

export interface Person extends PersonSummary {
  /** The owner's user id; null for the shared scope. */
  owner: string | null;
  faces: StoredFace[];
}

/** At most this many people a page of listPeople, and this many job ids a person lists. */
export const MAX_PEOPLE_PAGE = 200;
export const MAX_PERSON_JOB_IDS = 100;
/** A person's name is at most this long. */
export const MAX_PERSON_NAME = 200;

export interface PeopleStore extends FaceSink {
  /** The owner's people (null: the shared scope), most faces first. */
  listPeople(owner: string | null, limit: number): Promise<PersonSummary[]>;
  getPerson(id: number): Promise<Person | null>;
  /** The job's recorded faces, in their order in `analysis.faces`. */
  jobFaces(jobId: string): Promise<JobFace[]>;
  /** Names a person (null clears it); false when there is no such person. */
  renamePerson(id: number, name: string | null): Promise<boolean>;
  /**
   * Moves every face of `from` to `into` and removes `from`: `merged`, or why not (one of them missing, or they
   * belong to different owners).
   */
  mergePeople(into: number, from: number): Promise<'merged' | 'missing' | 'other-owner'>;
  /**
   * Takes the face (job id, index) out of person `id` and places it again by the rule, that person left out: it joins
   * the nearest other person within PEOPLE_MAX_DISTANCE (none holding another face of its picture), or starts a
   * person of its own. The person it left is removed when it has no face left. The face's person now, or `missing`
   * when person `id` has no such face.
   */
  detachFace(
    id: number,
    jobId: string,
    index: number,
  ): Promise<{ personId: number; left: 'kept' | 'removed' } | 'missing'>;
  /**
   * Removes a person: its faces stay with their jobs (boxes, crops) but lose their descriptor and their person, so no
   * face ever joins them again and the person is not formed anew from them. False when there is no such person.
   */
  deletePerson(id: number): Promise<boolean>;
}

/** The scope key of an owner: the shared scope is the empty string, which no user id is. */
export function ownerKey(owner: string | null | undefined): string {
  return owner ?? '';
}

export function ownerOfKey(key: string): string | null {
  return key === '' ? null : key;
}

/** A face's values for `INSERT INTO faces (job_id, idx, owner, person_id, score, box, crop, descriptor, created_at)`. */
export function faceRow(jobId: string, owner: string, personId: number | null, f: NewFace, now: string): unknown[] {
  const descriptor = f.descriptor ? descriptorBytes(f.descriptor) : null;
  return [jobId, f.index, owner, personId, f.score, JSON.stringify(f.box), f.crop, descriptor, now];
}
