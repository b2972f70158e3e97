import { defineConfig } from 'vitest/config';

// Three projects: fast unit tests with fakes; workflow tests (the real
// workflow bundle on Temporal's time-skipping test server, activities as plain
// functions, plus replay of recorded histories); and integration tests against
// the real stack (Postgres, Temporal, Docker) started once per run by the global
// setup. Integration files run one at a time: they share one Docker engine on
// a 2-core machine, and each isolates itself with unique ids.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'workflow',
          include: ['test/workflow/**/*.test.ts'],
          globalSetup: ['test/support/workflow-global-setup.ts'],
          // Each file starts its own time-skipping server: its clock is global.
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          fileParallelism: false,
          pool: 'forks',
          testTimeout: 180_000,
          hookTimeout: 240_000,
        },
      },
    ],
  },
});
