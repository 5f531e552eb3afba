import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Separate processes: native modules (sharp, better-sqlite3) and child processes behave as in production.
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
