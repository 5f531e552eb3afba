/**
 * What a process opens to keep state, chosen from config in one place: the job store and the LangGraph checkpointer.
 * The runtime, API, task workers, step threads, CLI and Studio all open their state here, so a second backend is a
 * change to this file and a folder beside sqlite/, not to every entry point.
 */
import fs from 'node:fs';
import type { BaseCheckpointSaver } from '@langchain/langgraph';
import { SqliteSaver } from '@langchain/langgraph-checkpoint-sqlite';
import type { Config } from '../config.js';
import type { JobStore } from './job-store.js';
import { openDatabase, SqliteJobStore, type Db } from './sqlite/sqlite-job-store.js';

export * from './job-store.js';

export interface Stores {
  store: JobStore;
  checkpointer: BaseCheckpointSaver;
  /** Closes the store and the checkpointer's connection. */
  close(): Promise<void>;
}

/** The job store and checkpointer of `config`, with DATA_DIR and its folders created. */
export function openStores(config: Config): Stores {
  for (const dir of [config.uploadsDir, config.artifactsDir]) fs.mkdirSync(dir, { recursive: true });
  return withDatabase(config, (db) => {
    const store = new SqliteJobStore(db);
    return { store, checkpointer: new SqliteSaver(db), close: () => store.close() };
  });
}

/** True when `config`'s job store has been created (a CLI reading status need not create one). */
export function storeExists(config: Config): boolean {
  return fs.existsSync(config.dbPath);
}

/** The job store alone (step threads and task workers record step runs; they need no checkpoints). */
export function openJobStore(config: Config): JobStore {
  return withDatabase(config, (db) => new SqliteJobStore(db));
}

/** Opens the SQLite file (creating DATA_DIR) for `open`; closes it again if `open` fails (a schema too new). */
function withDatabase<T>(config: Config, open: (db: Db) => T): T {
  fs.mkdirSync(config.dataDir, { recursive: true });
  const db = openDatabase(config.dbPath);
  try {
    return open(db);
  } catch (err) {
    db.close();
    throw err;
  }
}
