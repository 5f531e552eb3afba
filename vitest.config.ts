import { defineConfig } from 'vitest/config';

/** Run on both backends (TEST_STORE picks the one a file's services use). */
const ON_BOTH = [
  'test/service.test.ts',
  'test/lifecycle.test.ts',
  'test/chaos.test.ts',
  'test/api.test.ts',
  'test/sse.test.ts',
  'test/resume.test.ts',
  'test/review.test.ts',
  'test/run-faults.test.ts',
  'test/duplicates-api.test.ts',
];
const POSTGRES_ONLY = ['test/scale-out.test.ts', 'test/database-outage.test.ts'];

export default defineConfig({
  test: {
    // Time limits here are hang guards, not speed checks (benchmarks measure speed): a test that is merely slow because
    // a second copy of the suite shares the two cores must not fail. Tests with heavier work set their own, larger.
    testTimeout: 180_000,
    hookTimeout: 300_000,
    // Separate processes: native modules (sharp, better-sqlite3) and child processes behave as in production.
    pool: 'forks',
    maxWorkers: 2,
    // Concurrent tests of one file (the corpus runs one CLI process per file): three at a time keeps every job well
    // inside its 30 s limit on two cores while another file runs beside it.
    maxConcurrency: 3,
    reporters: ['default'],
    projects: [
      // Everything, with each service's jobs in the SQLite file of its DATA_DIR.
      {
        extends: true,
        test: { name: 'sqlite', include: ['test/**/*.test.ts'], exclude: POSTGRES_ONLY, env: { TEST_STORE: 'sqlite' } },
      },
      // The files that exercise the service's state end to end run again with jobs and checkpoints in PostgreSQL
      // (a database per file on TEST_DATABASE_URL's server), plus what only PostgreSQL can do: many machines.
      {
        extends: true,
        test: { name: 'postgres', include: [...ON_BOTH, ...POSTGRES_ONLY], env: { TEST_STORE: 'postgres' } },
      },
    ],
  },
});
