/**
 * The PostgreSQL schema DATABASE_SCHEMA names, in a database of this file's own: a name that is also an SQL keyword
 * (`user`) is a schema like any other, since every use of it is quoted; PostgreSQL's own schemas are refused at
 * start-up, naming the variable.
 */
import fs from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';
import { openStores } from '../src/store/index.js';
import { PostgresJobStore } from '../src/store/postgres/postgres-job-store.js';
import { TestState } from './helpers.js';

let state: TestState;
let url: string;

beforeAll(async () => {
  state = await TestState.create('pg-schema', 'postgres');
  url = state.env.DATABASE_URL!;
});

afterAll(async () => {
  await state?.drop();
});

test('DATABASE_SCHEMA=user keeps the jobs and checkpoints in the schema "user"', async () => {
  const config = loadConfig({ DATA_DIR: state.dataDir, DATABASE_URL: url, DATABASE_SCHEMA: 'user' });
  const stores = await openStores(config);
  try {
    await stores.store.createOrGet({ jobId: 'in-user', file: { path: '/media/in-user.jpg' } });
    expect((await stores.store.get('in-user'))?.status).toBe('queued');
  } finally {
    await stores.close();
  }
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    const { rows } = await admin.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'user' ORDER BY table_name",
    );
    const tables = rows.map((r) => r.table_name);
    expect(tables).toContain('jobs');
    expect(tables).toContain('checkpoints');
    const { rows: jobs } = await admin.query<{ id: string }>('SELECT id FROM "user".jobs');
    expect(jobs).toEqual([{ id: 'in-user' }]);
  } finally {
    await admin.end();
  }
});

test("PostgreSQL's own schemas are refused at start-up, naming DATABASE_SCHEMA", async () => {
  for (const schema of ['information_schema', 'pg_catalog', 'pg_toast', 'pg_temp_1', 'pg_mine']) {
    expect(() => loadConfig({ DATA_DIR: state.dataDir, DATABASE_URL: url, DATABASE_SCHEMA: schema }), schema).toThrow(
      /DATABASE_SCHEMA.*PostgreSQL's own/,
    );
    // And by the store itself, whoever opens it.
    await expect(PostgresJobStore.open(url, { schema }), schema).rejects.toThrow(/PostgreSQL's own/);
  }
  expect(fs.existsSync(state.dataDir)).toBe(true);
});
