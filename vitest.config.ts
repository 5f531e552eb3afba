import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
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
  },
});
