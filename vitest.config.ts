import { defineConfig } from 'vitest/config';

// Two projects: fast unit tests with fakes, and integration tests against the
// real stack (Postgres, Temporal, Docker) started once per run by the global
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
