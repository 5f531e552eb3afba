/** The people store in SQLite (see ../people-store.ts): each write in one `BEGIN IMMEDIATE` transaction. */
import type Database from 'better-sqlite3';
import { descriptorOfBytes, placeFaces, type KnownFace } from '../../lib/people.js';
import {
  faceRow,
  MAX_PERSON_JOB_IDS,
  ownerKey,
  ownerOfKey,
  type NewFace,
  type PeopleStore,
  type Person,
  type JobFace,
  type PersonSummary,
  type StoredFace,
} from '../people-store.js';

type Db = Database.Database;

interface FaceRow {
  job_id: string;
  idx: number;
  box: string;
  score: number;
  crop: string;
  person_id: number | null;
}

export class SqlitePeopleStore implements PeopleStore {
  constructor(private readonly db: Db) {}

  recordFaces(jobId: string, faces: NewFace[]): Promise<boolean> {
    return Promise.resolve(
      this.db
        .transaction(() => {
          const job = this.db.prepare('SELECT user_id FROM jobs WHERE id = ?').get(jobId) as
            { user_id: string | null } | undefined;
          if (!job) return false;
          if (this.db.prepare('SELECT 1 FROM faces WHERE job_id = ? LIMIT 1').get(jobId)) return false;
          const owner = ownerKey(job.user_id);
          const known = (
            this.db
              .prepare(
                'SELECT person_id, descriptor FROM faces WHERE owner = ? AND person_id IS NOT NULL AND descriptor IS NOT NULL',
              )
              .all(owner) as { person_id: number; descriptor: Buffer }[]
          ).map((r): KnownFace => ({ personId: r.person_id, descriptor: descriptorOfBytes(r.descriptor) }));
          const places = placeFaces(
            known,
            faces.map((f) => f.descriptor),
          );
          const now = new Date().toISOString();
          const newPerson = this.db.prepare('INSERT INTO people (owner, name, created_at) VALUES (?, NULL, ?)');
          const insert = this.db.prepare(
            `INSERT INTO faces (job_id, idx, owner, person_id, score, box, crop, descriptor, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          );
          faces.forEach((f, i) => {
            const place = places[i];
            const personId = place === 'new' ? Number(newPerson.run(owner, now).lastInsertRowid) : (place ?? null);
            insert.run(...faceRow(jobId, owner, personId, f, now));
          });
          indexPeopleNow(this.db, [jobId]);
          return true;
        })
        .immediate(),
    );
  }

  listPeople(owner: string | null, limit: number): Promise<PersonSummary[]> {
    const rows = this.db
      .prepare(
        `SELECT p.id, p.name, count(*) AS n FROM people p JOIN faces f ON f.person_id = p.id
         WHERE p.owner = ? GROUP BY p.id ORDER BY n DESC, p.id LIMIT ?`,
      )
      .all(ownerKey(owner), limit) as { id: number; name: string | null; n: number }[];
    return Promise.resolve(rows.map((r) => this.summary(r.id, r.name, r.n)));
  }

  getPerson(id: number): Promise<Person | null> {
    const row = this.db.prepare('SELECT id, owner, name FROM people WHERE id = ?').get(id) as
      { id: number; owner: string; name: string | null } | undefined;
    if (!row) return Promise.resolve(null);
    const faces = (
      this.db
        .prepare(
          'SELECT job_id, idx, box, score, crop, person_id FROM faces WHERE person_id = ? ORDER BY created_at, job_id, idx',
        )
        .all(id) as FaceRow[]
    ).map(storedFace);
    return Promise.resolve({
      ...this.summary(row.id, row.name, faces.length),
      owner: ownerOfKey(row.owner),
      faces,
    });
  }

  jobFaces(jobId: string): Promise<JobFace[]> {
    const rows = this.db
      .prepare(
        `SELECT job_id, idx, box, score, crop, person_id, descriptor IS NOT NULL AS described
           FROM faces WHERE job_id = ? ORDER BY idx`,
      )
      .all(jobId) as (FaceRow & { described: number })[];
    return Promise.resolve(rows.map((r) => ({ ...storedFace(r), described: r.described === 1 })));
  }

  renamePerson(id: number, name: string | null): Promise<boolean> {
    return Promise.resolve(
      this.db
        .transaction(() => {
          if (this.db.prepare('UPDATE people SET name = ? WHERE id = ?').run(name, id).changes === 0) return false;
          indexPeopleNow(this.db, this.jobsOf(id));
          return true;
        })
        .immediate(),
    );
  }

  mergePeople(into: number, from: number): Promise<'merged' | 'missing' | 'other-owner'> {
    return Promise.resolve(
      this.db
        .transaction(() => {
          const owners = this.db.prepare('SELECT id, owner FROM people WHERE id IN (?, ?)').all(into, from) as {
            id: number;
            owner: string;
          }[];
          if (into === from || owners.length < 2) return 'missing' as const;
          if (owners[0]!.owner !== owners[1]!.owner) return 'other-owner' as const;
          this.db.prepare('UPDATE faces SET person_id = ? WHERE person_id = ?').run(into, from);
          this.db.prepare('DELETE FROM people WHERE id = ?').run(from);
          indexPeopleNow(this.db, this.jobsOf(into));
          return 'merged' as const;
        })
        .immediate(),
    );
  }

  detachFace(
    id: number,
    jobId: string,
    index: number,
  ): Promise<{ personId: number; left: 'kept' | 'removed' } | 'missing'> {
    return Promise.resolve(
      this.db
        .transaction(() => {
          const face = this.db
            .prepare('SELECT owner, descriptor FROM faces WHERE job_id = ? AND idx = ? AND person_id = ?')
            .get(jobId, index, id) as { owner: string; descriptor: Buffer | null } | undefined;
          if (!face) return 'missing' as const;
          // The other people of its owner, but for those holding another face of the same picture.
          const known = (
            this.db
              .prepare(
                `SELECT person_id, descriptor FROM faces WHERE owner = ? AND person_id IS NOT NULL AND person_id <> ?
                   AND descriptor IS NOT NULL AND person_id NOT IN
                     (SELECT person_id FROM faces WHERE job_id = ? AND person_id IS NOT NULL)`,
              )
              .all(face.owner, id, jobId) as { person_id: number; descriptor: Buffer }[]
          ).map((r): KnownFace => ({ personId: r.person_id, descriptor: descriptorOfBytes(r.descriptor) }));
          const [place] = placeFaces(known, [face.descriptor && descriptorOfBytes(face.descriptor)]);
          const personId =
            place === 'new'
              ? Number(
                  this.db
                    .prepare('INSERT INTO people (owner, name, created_at) VALUES (?, NULL, ?)')
                    .run(face.owner, new Date().toISOString()).lastInsertRowid,
                )
              : (place ?? null);
          this.db.prepare('UPDATE faces SET person_id = ? WHERE job_id = ? AND idx = ?').run(personId, jobId, index);
          const removed = dropIfEmpty(this.db, id);
          indexPeopleNow(this.db, [jobId]);
          // A face without a descriptor is in no person, so it was never in person `id`: personId is set.
          return { personId: personId!, left: removed ? ('removed' as const) : ('kept' as const) };
        })
        .immediate(),
    );
  }

  deletePerson(id: number): Promise<boolean> {
    return Promise.resolve(
      this.db
        .transaction(() => {
          const jobIds = this.jobsOf(id);
          this.db.prepare('UPDATE faces SET person_id = NULL, descriptor = NULL WHERE person_id = ?').run(id);
          if (this.db.prepare('DELETE FROM people WHERE id = ?').run(id).changes === 0) return false;
          indexPeopleNow(this.db, jobIds);
          return true;
        })
        .immediate(),
    );
  }

  /** Every job with a face of the person. */
  private jobsOf(id: number): string[] {
    return (
      this.db.prepare('SELECT DISTINCT job_id FROM faces WHERE person_id = ?').all(id) as { job_id: string }[]
    ).map((r) => r.job_id);
  }

  private summary(id: number, name: string | null, faceCount: number): PersonSummary {
    const cover = this.db
      .prepare('SELECT job_id, crop FROM faces WHERE person_id = ? ORDER BY score DESC, job_id, idx LIMIT 1')
      .get(id) as { job_id: string; crop: string } | undefined;
    const jobIds = (
      this.db
        .prepare('SELECT DISTINCT job_id FROM faces WHERE person_id = ? ORDER BY job_id LIMIT ?')
        .all(id, MAX_PERSON_JOB_IDS) as { job_id: string }[]
    ).map((r) => r.job_id);
    return { id, name, faceCount, cover: cover ? { jobId: cover.job_id, crop: cover.crop } : null, jobIds };
  }
}

/** Inside the job delete's transaction: the job's faces, and the people they leave empty. */
export function deleteJobFacesNow(db: Db, jobId: string): void {
  const people = db
    .prepare('SELECT DISTINCT person_id FROM faces WHERE job_id = ? AND person_id IS NOT NULL')
    .all(jobId) as { person_id: number }[];
  db.prepare('DELETE FROM faces WHERE job_id = ?').run(jobId);
  for (const p of people) dropIfEmpty(db, p.person_id);
}

/** Removes the person when no face is in it; whether it did. */
function dropIfEmpty(db: Db, id: number): boolean {
  return (
    db.prepare('DELETE FROM people WHERE id = ? AND NOT EXISTS (SELECT 1 FROM faces WHERE person_id = ?)').run(id, id)
      .changes > 0
  );
}

/**
 * The jobs' search rows' `people` column (lib/search.ts): the names of the people their faces are in, one a line, so
 * a search for a name finds the jobs of that person, and a rename, merge, detach or delete changes what it finds.
 */
export function indexPeopleNow(db: Db, jobIds: Iterable<string>): void {
  const names = db.prepare(
    `SELECT coalesce(group_concat(name, char(10)), '') AS people FROM (SELECT DISTINCT p.name AS name
       FROM faces f JOIN people p ON p.id = f.person_id WHERE f.job_id = ? AND p.name IS NOT NULL ORDER BY p.name)`,
  );
  const row = db.prepare('SELECT row FROM job_search_rows WHERE job_id = ?');
  const update = db.prepare('UPDATE job_search SET people = ? WHERE rowid = ?');
  for (const jobId of jobIds) {
    const known = row.get(jobId) as { row: number } | undefined;
    if (known) update.run((names.get(jobId) as { people: string }).people, known.row);
  }
}

function storedFace(r: FaceRow): StoredFace {
  return {
    jobId: r.job_id,
    index: r.idx,
    box: JSON.parse(r.box) as StoredFace['box'],
    score: r.score,
    crop: r.crop,
    personId: r.person_id,
  };
}
