/**
 * The people store in PostgreSQL (see ../people-store.ts). recordFaces holds a transaction-scoped advisory lock on
 * its owner, so two jobs of one owner are placed one after the other and never both start a person for the same face.
 */
import type pg from 'pg';
import { descriptorOfBytes, placeFaces } from '../../lib/people.js';
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

type Queryable = pg.Pool | pg.PoolClient;
/** `work` in one transaction, repeated on a new connection when the connection is lost (the job store's). */
export type Transaction = <T>(work: (client: pg.PoolClient) => Promise<T>) => Promise<T>;

/** First key of the owners' advisory locks (two-key locks never collide with the migrations' one-key lock). */
const PEOPLE_LOCK = 0x70656f70; // 'peop'

interface FaceRow {
  job_id: string;
  idx: number;
  box: StoredFace['box'];
  score: number;
  crop: string;
  person_id: number | null;
}

export class PostgresPeopleStore implements PeopleStore {
  constructor(
    private readonly pool: pg.Pool,
    private readonly transaction: Transaction,
  ) {}

  recordFaces(jobId: string, faces: NewFace[]): Promise<boolean> {
    // Safe to repeat: a repetition after a commit finds the faces and writes nothing.
    return this.transaction(async (c) => {
      const job = await c.query<{ user_id: string | null }>('SELECT user_id FROM jobs WHERE id = $1 FOR SHARE', [
        jobId,
      ]);
      if (job.rows.length === 0) return false;
      const owner = ownerKey(job.rows[0]!.user_id);
      await c.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [PEOPLE_LOCK, owner]);
      if ((await c.query('SELECT 1 FROM faces WHERE job_id = $1 LIMIT 1', [jobId])).rowCount) return false;
      const known = await c.query<{ person_id: number; descriptor: Buffer }>(
        'SELECT person_id, descriptor FROM faces WHERE owner = $1 AND person_id IS NOT NULL AND descriptor IS NOT NULL',
        [owner],
      );
      const places = placeFaces(
        known.rows.map((r) => ({ personId: r.person_id, descriptor: descriptorOfBytes(r.descriptor) })),
        faces.map((f) => f.descriptor),
      );
      const now = new Date().toISOString();
      for (const [i, f] of faces.entries()) {
        const place = places[i];
        let personId = place === 'new' ? null : (place ?? null);
        if (place === 'new') {
          const made = await c.query<{ id: number }>(
            'INSERT INTO people (owner, name, created_at) VALUES ($1, NULL, $2) RETURNING id',
            [owner, now],
          );
          personId = made.rows[0]!.id;
        }
        await c.query(
          `INSERT INTO faces (job_id, idx, owner, person_id, score, box, crop, descriptor, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
          faceRow(jobId, owner, personId, f, now),
        );
      }
      await indexPeopleIn(c, [jobId]);
      return true;
    });
  }

  async listPeople(owner: string | null, limit: number): Promise<PersonSummary[]> {
    const { rows } = await this.pool.query<{ id: number; name: string | null; n: number }>(
      `SELECT p.id, p.name, count(*)::int AS n FROM people p JOIN faces f ON f.person_id = p.id
       WHERE p.owner = $1 GROUP BY p.id ORDER BY n DESC, p.id LIMIT $2`,
      [ownerKey(owner), limit],
    );
    const out: PersonSummary[] = [];
    for (const r of rows) out.push(await summary(this.pool, r.id, r.name, r.n));
    return out;
  }

  async getPerson(id: number): Promise<Person | null> {
    const { rows } = await this.pool.query<{ id: number; owner: string; name: string | null }>(
      'SELECT id, owner, name FROM people WHERE id = $1',
      [id],
    );
    const row = rows[0];
    if (!row) return null;
    const faces = (
      await this.pool.query<FaceRow>(
        'SELECT job_id, idx, box, score, crop, person_id FROM faces WHERE person_id = $1 ORDER BY created_at, job_id, idx',
        [id],
      )
    ).rows.map(storedFace);
    return { ...(await summary(this.pool, row.id, row.name, faces.length)), owner: ownerOfKey(row.owner), faces };
  }

  async jobFaces(jobId: string): Promise<JobFace[]> {
    const { rows } = await this.pool.query<FaceRow & { described: boolean }>(
      `SELECT job_id, idx, box, score, crop, person_id, descriptor IS NOT NULL AS described
         FROM faces WHERE job_id = $1 ORDER BY idx`,
      [jobId],
    );
    return rows.map((r) => ({ ...storedFace(r), described: r.described }));
  }

  renamePerson(id: number, name: string | null): Promise<boolean> {
    return this.transaction(async (c) => {
      if (!(await c.query('UPDATE people SET name = $1 WHERE id = $2', [name, id])).rowCount) return false;
      await indexPeopleIn(c, await jobsOf(c, id));
      return true;
    });
  }

  mergePeople(into: number, from: number): Promise<'merged' | 'missing' | 'other-owner'> {
    return this.transaction(async (c) => {
      const { rows } = await c.query<{ id: number; owner: string }>(
        'SELECT id, owner FROM people WHERE id = ANY($1::int[]) FOR UPDATE',
        [[into, from]],
      );
      if (into === from || rows.length < 2) return 'missing' as const;
      if (rows[0]!.owner !== rows[1]!.owner) return 'other-owner' as const;
      await c.query('UPDATE faces SET person_id = $1 WHERE person_id = $2', [into, from]);
      await c.query('DELETE FROM people WHERE id = $1', [from]);
      await indexPeopleIn(c, await jobsOf(c, into));
      return 'merged' as const;
    });
  }

  detachFace(
    id: number,
    jobId: string,
    index: number,
  ): Promise<{ personId: number; left: 'kept' | 'removed' } | 'missing'> {
    return this.transaction(async (c) => {
      const found = await c.query<{ owner: string }>(
        'SELECT owner FROM faces WHERE job_id = $1 AND idx = $2 AND person_id = $3',
        [jobId, index, id],
      );
      if (found.rows.length === 0) return 'missing' as const;
      const owner = found.rows[0]!.owner;
      // Placed as recordFaces places: one owner at a time. Read again under the lock.
      await c.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [PEOPLE_LOCK, owner]);
      const face = await c.query<{ descriptor: Buffer | null }>(
        'SELECT descriptor FROM faces WHERE job_id = $1 AND idx = $2 AND person_id = $3 FOR UPDATE',
        [jobId, index, id],
      );
      if (face.rows.length === 0) return 'missing' as const;
      // The other people of its owner, but for those holding another face of the same picture.
      const known = await c.query<{ person_id: number; descriptor: Buffer }>(
        `SELECT person_id, descriptor FROM faces WHERE owner = $1 AND person_id IS NOT NULL AND person_id <> $2
           AND descriptor IS NOT NULL AND person_id NOT IN
             (SELECT person_id FROM faces WHERE job_id = $3 AND person_id IS NOT NULL)`,
        [owner, id, jobId],
      );
      const descriptor = face.rows[0]!.descriptor;
      const [place] = placeFaces(
        known.rows.map((r) => ({ personId: r.person_id, descriptor: descriptorOfBytes(r.descriptor) })),
        [descriptor && descriptorOfBytes(descriptor)],
      );
      let personId = place === 'new' ? null : (place ?? null);
      if (place === 'new') {
        const made = await c.query<{ id: number }>(
          'INSERT INTO people (owner, name, created_at) VALUES ($1, NULL, $2) RETURNING id',
          [owner, new Date().toISOString()],
        );
        personId = made.rows[0]!.id;
      }
      await c.query('UPDATE faces SET person_id = $1 WHERE job_id = $2 AND idx = $3', [personId, jobId, index]);
      const removed = await dropIfEmpty(c, [id]);
      await indexPeopleIn(c, [jobId]);
      // A face without a descriptor is in no person, so it was never in person `id`: personId is set.
      return { personId: personId!, left: removed > 0 ? ('removed' as const) : ('kept' as const) };
    });
  }

  deletePerson(id: number): Promise<boolean> {
    return this.transaction(async (c) => {
      const jobIds = await jobsOf(c, id);
      await c.query('UPDATE faces SET person_id = NULL, descriptor = NULL WHERE person_id = $1', [id]);
      if (!(await c.query('DELETE FROM people WHERE id = $1', [id])).rowCount) return false;
      await indexPeopleIn(c, jobIds);
      return true;
    });
  }
}

/** Every job with a face of the person. */
async function jobsOf(c: Queryable, id: number): Promise<string[]> {
  const { rows } = await c.query<{ job_id: string }>('SELECT DISTINCT job_id FROM faces WHERE person_id = $1', [id]);
  return rows.map((r) => r.job_id);
}

/** Removes those of the people no face is in; how many it removed. */
async function dropIfEmpty(c: Queryable, people: number[]): Promise<number> {
  if (people.length === 0) return 0;
  const { rowCount } = await c.query(
    'DELETE FROM people p WHERE p.id = ANY($1::int[]) AND NOT EXISTS (SELECT 1 FROM faces f WHERE f.person_id = p.id)',
    [people],
  );
  return rowCount ?? 0;
}

/**
 * The jobs' search rows' `people` column (lib/search.ts): the names of the people their faces are in, one a line, so
 * a search for a name finds the jobs of that person, and a rename, merge, detach or delete changes what it finds.
 */
export async function indexPeopleIn(c: Queryable, jobIds: string[]): Promise<void> {
  if (jobIds.length === 0) return;
  await c.query(
    `UPDATE job_search s SET people = coalesce((SELECT string_agg(DISTINCT p.name, E'\\n' ORDER BY p.name)
         FROM faces f JOIN people p ON p.id = f.person_id WHERE f.job_id = s.job_id AND p.name IS NOT NULL), '')
      WHERE s.job_id = ANY($1::text[])`,
    [jobIds],
  );
}

/** Inside the job delete's transaction, after the job's row is deleted: its faces, and the people they leave empty. */
export async function deleteJobFacesIn(c: pg.PoolClient, jobId: string): Promise<void> {
  const { rows } = await c.query<{ person_id: number }>(
    'DELETE FROM faces WHERE job_id = $1 AND person_id IS NOT NULL RETURNING person_id',
    [jobId],
  );
  await c.query('DELETE FROM faces WHERE job_id = $1', [jobId]);
  await dropIfEmpty(c, [...new Set(rows.map((r) => r.person_id))]);
}

async function summary(db: Queryable, id: number, name: string | null, faceCount: number): Promise<PersonSummary> {
  const cover = await db.query<{ job_id: string; crop: string }>(
    'SELECT job_id, crop FROM faces WHERE person_id = $1 ORDER BY score DESC, job_id, idx LIMIT 1',
    [id],
  );
  const jobs = await db.query<{ job_id: string }>(
    'SELECT DISTINCT job_id FROM faces WHERE person_id = $1 ORDER BY job_id LIMIT $2',
    [id, MAX_PERSON_JOB_IDS],
  );
  const c = cover.rows[0];
  return {
    id,
    name,
    faceCount,
    cover: c ? { jobId: c.job_id, crop: c.crop } : null,
    jobIds: jobs.rows.map((r) => r.job_id),
  };
}

function storedFace(r: FaceRow): StoredFace {
  return { jobId: r.job_id, index: r.idx, box: r.box, score: r.score, crop: r.crop, personId: r.person_id };
}
