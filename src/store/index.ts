/**
 * What a process opens to keep state, chosen from config in one place: the job store and the LangGraph checkpointer,
 * in PostgreSQL when DATABASE_URL is set (any number of processes on any number of machines), else in the SQLite file
 * in DATA_DIR (processes of one machine). The runtime, API, task workers, step threads, CLI and Studio all open their
 * state here; nothing else knows which backend runs.
 */
import fs from 'node:fs';
import type { BaseCheckpointSaver } from '@langchain/langgraph';
import type { Pool } from 'pg';
import type { Config } from '../config.js';
import type { JobStore } from './job-store.js';
import type { Db } from './sqlite/sqlite-job-store.js';

export * from './job-store.js';
export type { RelatedDuplicate } from './duplicates.js';
export * from './people-store.js';

export interface Stores {
  store: JobStore;
  checkpointer: BaseCheckpointSaver;
  /** Closes the store and the checkpointer's connection. */
  close(): Promise<void>;
}

/** The job store and checkpointer of `config`, with DATA_DIR's folders (uploads, artifacts) created. */
export async function openStores(config: Config): Promise<Stores> {
  for (const dir of [config.uploadsDir, config.artifactsDir]) fs.mkdirSync(dir, { recursive: true });
  // Each backend (and LangGraph's saver for it) is loaded only when chosen: a CLI command that reads one job
  // does not load the other backend, nor LangGraph when it needs no checkpoints.
  if (config.database) {
    const [{ RetryingPostgresSaver }, { saverUpToDate, underMigrationLock }, { PostgresJobStore, postgresPool }] =
      await Promise.all([
        import('./postgres/saver.js'),
        import('./postgres/migrations.js'),
        import('./postgres/postgres-job-store.js'),
      ]);
    const { url, schema } = config.database;
    const pool = postgresPool(url, { schema });
    try {
      const store = await PostgresJobStore.onPool(pool, schema, config.search);
      // One pool for both, closed with the store. The saver names its tables with a schema of its own choosing
      // (`public` unless told): give it the one the job store is in, so jobs and checkpoints stay together.
      const saverSchema = schema ?? (await currentSchema(pool));
      const checkpointer = new RetryingPostgresSaver(pool, undefined, { schema: saverSchema });
      if (!(await saverUpToDate(pool, saverSchema)))
        await underMigrationLock(pool, async () => {
          if (!(await saverUpToDate(pool, saverSchema))) await checkpointer.setup();
        });
      return { store, checkpointer, close: () => store.close() };
    } catch (err) {
      await pool.end();
      throw err;
    }
  }
  const [{ SqliteSaver }, { SqliteJobStore, openDatabase }] = await Promise.all([
    import('@langchain/langgraph-checkpoint-sqlite'),
    import('./sqlite/sqlite-job-store.js'),
  ]);
  return withDatabase(config, openDatabase, (db) => {
    const store = new SqliteJobStore(db, config.search);
    return { store, checkpointer: readySqliteSaver(new SqliteSaver(db)), close: () => store.close() };
  });
}

/**
 * The saver with its tables made now. It makes them on first use, except in deleteThread (1.0.x): deleting a job
 * through an API process that had never run a graph on a new database failed with "no such table: checkpoints".
 */
function readySqliteSaver<T extends object>(saver: T): T {
  (saver as unknown as { setup(): void }).setup();
  return saver;
}

/** The schema the connection's search_path creates tables in (where the job store's tables are). */
async function currentSchema(pool: Pool): Promise<string> {
  const { rows } = await pool.query<{ schema: string | null }>('SELECT current_schema() AS schema');
  return rows[0]?.schema ?? 'public';
}

/**
 * True when `config`'s job store may hold jobs (a CLI reading status need not create an empty SQLite file). A
 * PostgreSQL server is always asked.
 */
export function storeExists(config: Config): boolean {
  return config.database !== null || fs.existsSync(config.dbPath);
}

/** The job store alone (step threads and task workers record step runs; they need no checkpoints). */
export async function openJobStore(config: Config): Promise<JobStore> {
  if (config.database) {
    // One connection: a step thread or a CLI command does one thing at a time (a worker process has a step thread
    // per core and queue kind, so this is what bounds its connections).
    const { PostgresJobStore } = await import('./postgres/postgres-job-store.js');
    return PostgresJobStore.open(config.database.url, {
      schema: config.database.schema,
      maxConnections: 1,
      search: config.search,
    });
  }
  const { SqliteJobStore, openDatabase } = await import('./sqlite/sqlite-job-store.js');
  return withDatabase(config, openDatabase, (db) => new SqliteJobStore(db, config.search));
}

/** Opens the SQLite file (creating DATA_DIR) for `open`; closes it again if `open` fails (a schema too new). */
function withDatabase<T>(config: Config, openDatabase: (file: string) => Db, open: (db: Db) => T): T {
  fs.mkdirSync(config.dataDir, { recursive: true });
  const db = openDatabase(config.dbPath);
  try {
    return open(db);
  } catch (err) {
    db.close();
    throw err;
  }
}
