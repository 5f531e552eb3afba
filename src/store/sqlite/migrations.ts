/**
 * The job store's schema in SQLite, as numbered migrations. `schema_version` holds the number of the last one applied;
 * every process applies the missing ones at start-up, inside one write transaction, so two processes starting at once
 * never apply one twice. A database newer than this code stops start-up: the code would misread it.
 */
import type Database from 'better-sqlite3';
import { searchTextOf } from '../../lib/search.js';
import type { JobDocument } from '../../lib/types.js';
import { SchemaTooNew } from '../job-store.js';
import { indexPeopleNow } from './sqlite-people-store.js';

type Db = Database.Database;

/** How the search index cuts and stems words (search threads tokenize query words with it too). */
export const SEARCH_TOKENIZER = `porter unicode61 remove_diacritics 2 categories 'L* M* N* Co'`;

const MIGRATIONS: ((db: Db) => void)[] = [
  // 1: the schema before versioning (databases made by earlier releases already have these tables; some lack the
  // retry and request_hash columns, added later without a version).
  (db) => {
    db.exec(`
      CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        file_type TEXT,
        user_id TEXT,
        priority INTEGER NOT NULL DEFAULT 0,
        input TEXT NOT NULL,
        doc TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        finished_at TEXT
      );
      CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at);
      CREATE INDEX IF NOT EXISTS jobs_user ON jobs (user_id, created_at);
      CREATE TABLE IF NOT EXISTS step_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL,
        step TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        pid INTEGER NOT NULL,
        status TEXT NOT NULL,
        error_code TEXT,
        started_at TEXT NOT NULL,
        finished_at TEXT
      );
      CREATE INDEX IF NOT EXISTS step_runs_job ON step_runs (job_id);
      CREATE TABLE IF NOT EXISTS job_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS job_events_job ON job_events (job_id, id);
      CREATE TABLE IF NOT EXISTS ai_usage (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL,
        step TEXT NOT NULL,
        capability TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        calls INTEGER NOT NULL,
        latency_ms INTEGER NOT NULL,
        created_at TEXT NOT NULL
      );
    `);
    const columns = db.prepare('PRAGMA table_info(jobs)').all() as { name: string }[];
    if (!columns.some((c) => c.name === 'retry')) db.exec('ALTER TABLE jobs ADD COLUMN retry TEXT');
    if (!columns.some((c) => c.name === 'request_hash')) db.exec('ALTER TABLE jobs ADD COLUMN request_hash TEXT');
  },
  // 2: full-text search, one row per job: its file name and its words (lib/search.ts), stemmed by the porter
  // tokenizer as PostgreSQL's 'english' configuration does; combining marks belong to words (Devanagari, Arabic).
  // job_search_rows maps a job to its FTS row, so a job's row is found by key, never by a scan of the index. Jobs
  // stored before it are indexed from their documents.
  (db) => {
    db.exec(`
      CREATE VIRTUAL TABLE IF NOT EXISTS job_search USING fts5(
        name, body, tokenize = "${SEARCH_TOKENIZER}");
      CREATE TABLE IF NOT EXISTS job_search_rows (job_id TEXT PRIMARY KEY, row INTEGER NOT NULL UNIQUE);
    `);
    const insert = db.prepare('INSERT INTO job_search (name, body) VALUES (?, ?)');
    const map = db.prepare('INSERT INTO job_search_rows (job_id, row) VALUES (?, ?)');
    // Read first: better-sqlite3 runs no statement on a connection while another one is still iterating.
    for (const row of db.prepare('SELECT id, doc FROM jobs').all() as { id: string; doc: string }[]) {
      const doc = JSON.parse(row.doc) as JobDocument;
      const { name, body } = searchTextOf(doc.file.name, doc.results ?? {});
      map.run(row.id, insert.run(name, body).lastInsertRowid);
    }
  },
  // 3: duplicates (../duplicates.ts): one row per finished job with its owner, sha256 and perceptual hash, the hash's
  // four 16-bit parts each indexed with the owner for multi-index lookup (each index holds the other parts too, so the
  // first pass reads no table row); `listed`: how many duplicates its document
  // lists (the duplicates filter). Jobs finished before it are not registered.
  (db) => {
    db.exec(`
      CREATE TABLE IF NOT EXISTS job_hashes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL UNIQUE,
        owner TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        hash TEXT,
        p0 INTEGER, p1 INTEGER, p2 INTEGER, p3 INTEGER,
        listed INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX IF NOT EXISTS job_hashes_sha256 ON job_hashes (owner, sha256);
      CREATE INDEX IF NOT EXISTS job_hashes_p0 ON job_hashes (owner, p0, p1, p2, p3);
      CREATE INDEX IF NOT EXISTS job_hashes_p1 ON job_hashes (owner, p1, p0, p2, p3);
      CREATE INDEX IF NOT EXISTS job_hashes_p2 ON job_hashes (owner, p2, p0, p1, p3);
      CREATE INDEX IF NOT EXISTS job_hashes_p3 ON job_hashes (owner, p3, p0, p1, p2);
      CREATE INDEX IF NOT EXISTS job_hashes_listed ON job_hashes (job_id) WHERE listed > 0;
      `);
  },
  // 4: faces and people (store/people-store.ts), per owner (`user_id`, '' for jobs without one): a job's faces are
  // keyed by job id and face index, so they are written once; descriptors are little-endian float32 bytes.
  (db) => {
    db.exec(`
      CREATE TABLE IF NOT EXISTS people (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        owner TEXT NOT NULL,
        name TEXT,
        created_at TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS people_owner ON people (owner);
      CREATE TABLE IF NOT EXISTS faces (
        job_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        owner TEXT NOT NULL,
        person_id INTEGER,
        score REAL NOT NULL,
        box TEXT NOT NULL,
        crop TEXT NOT NULL,
        descriptor BLOB,
        created_at TEXT NOT NULL,
        PRIMARY KEY (job_id, idx)
      );
      CREATE INDEX IF NOT EXISTS faces_owner ON faces (owner, person_id);
      CREATE INDEX IF NOT EXISTS faces_person ON faces (person_id);
    `);
  },
  // 5: the search index gets a third column, `people`: the names of the people a job's faces are in (kept by the
  // people store as people are named, merged, detached and deleted). FTS5 adds no column: the index is made again.
  (db) => {
    db.exec(`
      ALTER TABLE job_search RENAME TO job_search_v4;
      CREATE VIRTUAL TABLE job_search USING fts5(name, body, people, tokenize = "${SEARCH_TOKENIZER}");
      INSERT INTO job_search (rowid, name, body, people) SELECT rowid, name, body, '' FROM job_search_v4;
      DROP TABLE job_search_v4;
    `);
    const named = db
      .prepare('SELECT DISTINCT f.job_id FROM faces f JOIN people p ON p.id = f.person_id WHERE p.name IS NOT NULL')
      .all() as { job_id: string }[];
    indexPeopleNow(
      db,
      named.map((r) => r.job_id),
    );
  },
];

/** The schema version this code writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** Applies the migrations `db` lacks; returns the version it is at now. */
export function migrate(db: Db): number {
  return db
    .transaction(() => {
      db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
      const row = db.prepare('SELECT version FROM schema_version').get() as { version: number } | undefined;
      const found = row?.version ?? 0;
      if (found > SCHEMA_VERSION) throw new SchemaTooNew(found, SCHEMA_VERSION);
      for (let v = found; v < SCHEMA_VERSION; v++) MIGRATIONS[v]!(db);
      if (!row) db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(SCHEMA_VERSION);
      else if (found < SCHEMA_VERSION) db.prepare('UPDATE schema_version SET version = ?').run(SCHEMA_VERSION);
      return SCHEMA_VERSION;
    })
    .immediate();
}
