/**
 * The job store's schema in PostgreSQL, as numbered migrations (the same versions as SQLite's). Every process applies
 * the missing ones at start-up in one transaction holding an advisory lock, so processes starting at once on several
 * machines apply each migration once; a database newer than the code stops start-up.
 */
import type { Pool, PoolClient } from 'pg';
import { PG_JOINERS } from '../../lib/search.js';
import { SchemaTooNew } from '../job-store.js';

const MIGRATIONS: string[] = [
  // 1: jobs, their events, step runs and model usage. Documents are JSON, not JSONB: JSON keeps them exactly as
  // written (JSONB reorders keys), so GET /jobs/:id reads the same on both backends.
  `
  CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    file_type TEXT,
    user_id TEXT,
    priority INTEGER NOT NULL DEFAULT 0,
    input JSON NOT NULL,
    doc JSON NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    finished_at TEXT,
    retry JSON,
    request_hash TEXT
  );
  CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at);
  CREATE INDEX IF NOT EXISTS jobs_user ON jobs (user_id, created_at);
  CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
  CREATE TABLE IF NOT EXISTS step_runs (
    id BIGSERIAL PRIMARY KEY,
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
    id BIGSERIAL PRIMARY KEY,
    job_id TEXT NOT NULL,
    type TEXT NOT NULL,
    data JSON NOT NULL,
    created_at TEXT NOT NULL
  );
  CREATE INDEX IF NOT EXISTS job_events_job ON job_events (job_id, id);
  CREATE TABLE IF NOT EXISTS ai_usage (
    id BIGSERIAL PRIMARY KEY,
    job_id TEXT NOT NULL,
    step TEXT NOT NULL,
    capability TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    calls BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    created_at TEXT NOT NULL
  );
  `,
  // 2: full-text search, one row per job: its file name (weight A) and its words (B). media_search is 'english'
  // without stop words (every word of a query counts, as in SQLite); the characters that join PostgreSQL's compound
  // tokens are spaces in what is indexed (lib/search.ts, JOINERS). Jobs stored before it are indexed from their
  // documents.
  `
  DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_ts_dict WHERE dictname = 'media_english_stem'
                   AND dictnamespace = current_schema()::regnamespace) THEN
      CREATE TEXT SEARCH DICTIONARY media_english_stem (TEMPLATE = snowball, LANGUAGE = english);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = 'media_search'
                   AND cfgnamespace = current_schema()::regnamespace) THEN
      CREATE TEXT SEARCH CONFIGURATION media_search (COPY = english);
      ALTER TEXT SEARCH CONFIGURATION media_search
        ALTER MAPPING FOR asciiword, asciihword, hword_asciipart, word, hword, hword_part WITH media_english_stem;
    END IF;
  END $$;
  CREATE TABLE IF NOT EXISTS job_search (
    job_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    document tsvector GENERATED ALWAYS AS (
      setweight(to_tsvector('media_search'::regconfig, regexp_replace(name, '${PG_JOINERS}', ' ', 'g')), 'A') ||
      setweight(to_tsvector('media_search'::regconfig, regexp_replace(body, '${PG_JOINERS}', ' ', 'g')), 'B')
    ) STORED
  );
  CREATE INDEX IF NOT EXISTS job_search_document ON job_search USING GIN (document);
  INSERT INTO job_search (job_id, name, body)
    SELECT id,
      regexp_replace(coalesce(doc->'file'->>'name', ''), '${PG_JOINERS}', ' ', 'g'),
      concat_ws(E'\\n',
        (SELECT string_agg(l->>'name', ' ') FROM json_array_elements(
          CASE WHEN json_typeof(doc->'results'->'analysis'->'labels') = 'array'
               THEN doc->'results'->'analysis'->'labels' END) l),
        doc->'results'->'analysis'->>'caption',
        doc->'results'->'summary'->>'title',
        doc->'results'->'summary'->>'text',
        doc->'results'->'transcript'->>'text',
        doc->'results'->'text'->>'excerpt')
    FROM jobs
    ON CONFLICT (job_id) DO NOTHING;
  `,
  // 3: duplicates (../duplicates.ts), as in SQLite: one row per finished job, the perceptual hash's four 16-bit parts
  // each indexed with the owner, the other parts and seq included (the first pass of a lookup is index-only).
  `
  CREATE TABLE IF NOT EXISTS job_hashes (
    seq BIGSERIAL PRIMARY KEY,
    job_id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    hash TEXT,
    p0 INTEGER, p1 INTEGER, p2 INTEGER, p3 INTEGER,
    listed INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX IF NOT EXISTS job_hashes_sha256 ON job_hashes (owner, sha256);
  CREATE INDEX IF NOT EXISTS job_hashes_p0 ON job_hashes (owner, p0) INCLUDE (p1, p2, p3, seq);
  CREATE INDEX IF NOT EXISTS job_hashes_p1 ON job_hashes (owner, p1) INCLUDE (p0, p2, p3, seq);
  CREATE INDEX IF NOT EXISTS job_hashes_p2 ON job_hashes (owner, p2) INCLUDE (p0, p1, p3, seq);
  CREATE INDEX IF NOT EXISTS job_hashes_p3 ON job_hashes (owner, p3) INCLUDE (p0, p1, p2, seq);
  CREATE INDEX IF NOT EXISTS job_hashes_listed ON job_hashes (job_id) WHERE listed > 0;
  `,
  // 4: faces and people (store/people-store.ts), per owner (`user_id`, '' for jobs without one): a job's faces are
  // keyed by job id and face index, so they are written once; descriptors are little-endian float32 bytes.
  `
  CREATE TABLE IF NOT EXISTS people (
    id SERIAL PRIMARY KEY,
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
    score DOUBLE PRECISION NOT NULL,
    box JSON NOT NULL,
    crop TEXT NOT NULL,
    descriptor BYTEA,
    created_at TEXT NOT NULL,
    PRIMARY KEY (job_id, idx)
  );
  CREATE INDEX IF NOT EXISTS faces_owner ON faces (owner, person_id);
  CREATE INDEX IF NOT EXISTS faces_person ON faces (person_id);
  `,
  // 5: the search index gets a column, `people`: the names of the people a job's faces are in (kept by the people
  // store as people are named, merged, detached and deleted), weighed as the file name. The generated tsvector is
  // made again with it.
  `
  ALTER TABLE job_search ADD COLUMN IF NOT EXISTS people TEXT NOT NULL DEFAULT '';
  DROP INDEX IF EXISTS job_search_document;
  ALTER TABLE job_search DROP COLUMN IF EXISTS document;
  ALTER TABLE job_search ADD COLUMN document tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('media_search'::regconfig, regexp_replace(name, '${PG_JOINERS}', ' ', 'g')), 'A') ||
    setweight(to_tsvector('media_search'::regconfig, regexp_replace(body, '${PG_JOINERS}', ' ', 'g')), 'B') ||
    setweight(to_tsvector('media_search'::regconfig, regexp_replace(people, '${PG_JOINERS}', ' ', 'g')), 'A')
  ) STORED;
  CREATE INDEX IF NOT EXISTS job_search_document ON job_search USING GIN (document);
  UPDATE job_search s SET people = n.names
    FROM (SELECT f.job_id, string_agg(DISTINCT p.name, E'\\n' ORDER BY p.name) AS names
            FROM faces f JOIN people p ON p.id = f.person_id WHERE p.name IS NOT NULL GROUP BY f.job_id) n
   WHERE n.job_id = s.job_id;
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** One number for every media-orchestrator process: the advisory lock its migrations hold. */
const MIGRATION_LOCK = 0x6d6f7263; // 'morc'

/**
 * Applies the migrations the database lacks, on `client` (its search_path chooses the schema), creating `schema`
 * first when given. Under the lock: two `CREATE SCHEMA IF NOT EXISTS` at once can still collide in PostgreSQL.
 */
export async function migrate(client: PoolClient, schema?: string): Promise<number> {
  // Up to date (every start but the first, and every step thread): no lock, no DDL, so a role with no right to
  // create schemas or tables can run the service on a database an administrator prepared.
  const current = await currentVersion(client);
  if (current === SCHEMA_VERSION) return SCHEMA_VERSION;
  if (current !== null && current > SCHEMA_VERSION) throw new SchemaTooNew(current, SCHEMA_VERSION);
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    // CREATE SCHEMA IF NOT EXISTS needs the right to create schemas even when it exists: ask first.
    if (schema && !(await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])).rowCount)
      await client.query(`CREATE SCHEMA ${client.escapeIdentifier(schema)}`);
    await client.query('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
    const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_version');
    const found = rows[0]?.version ?? 0;
    if (found > SCHEMA_VERSION) throw new SchemaTooNew(found, SCHEMA_VERSION);
    for (let v = found; v < SCHEMA_VERSION; v++) await client.query(MIGRATIONS[v]!);
    if (rows.length === 0) await client.query('INSERT INTO schema_version (version) VALUES ($1)', [SCHEMA_VERSION]);
    else if (found < SCHEMA_VERSION) await client.query('UPDATE schema_version SET version = $1', [SCHEMA_VERSION]);
    await client.query('COMMIT');
    return SCHEMA_VERSION;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** The job store's version in the connection's schema; null when it has none yet. */
async function currentVersion(client: PoolClient): Promise<number | null> {
  const { rows } = await client.query<{ found: string | null }>("SELECT to_regclass('schema_version')::text AS found");
  if (!rows[0]?.found) return null;
  const version = await client.query<{ version: number }>('SELECT version FROM schema_version');
  return version.rows[0]?.version ?? null;
}

/**
 * The migrations of the pinned @langchain/langgraph-checkpoint-postgres (1.0.5 has 5; test/store.test.ts fails when
 * an upgrade adds one, so this number follows). Its setup() runs `CREATE SCHEMA IF NOT EXISTS` unconditionally, which
 * a role without the right to create schemas cannot run even when the schema exists, so it runs only when behind.
 */
export const SAVER_MIGRATIONS = 5;

/** True when the saver's tables in `schema` are at SAVER_MIGRATIONS. */
export async function saverUpToDate(pool: Pool, schema: string): Promise<boolean> {
  const table = `"${schema.replace(/"/g, '""')}".checkpoint_migrations`;
  const { rows } = await pool.query<{ found: string | null }>('SELECT to_regclass($1)::text AS found', [table]);
  if (!rows[0]?.found) return false;
  const max = await pool.query<{ v: number | null }>(`SELECT max(v) AS v FROM ${table}`);
  return max.rows[0]?.v === SAVER_MIGRATIONS - 1;
}

/**
 * Runs `work` (LangGraph's PostgresSaver.setup, which creates its schema and tables with no lock of its own) while
 * holding the migration lock on a connection of `pool`, so processes starting at once do it one after the other.
 */
export async function underMigrationLock<T>(pool: Pool, work: () => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      return await work();
    } finally {
      // A connection that could not unlock must not go back to the pool still holding the lock every other process
      // waits for: it is closed instead (which releases the lock).
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => (broken = true));
    }
  } finally {
    client.release(broken);
  }
}
