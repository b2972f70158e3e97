#!/usr/bin/env node
// `npm test`: the Prisma client is generated code (not committed), so make
// sure it exists, then run every vitest project (unit + integration).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const run = (args) => spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' }).status ?? 1;

if (!existsSync(path.join(root, 'core/generated/prisma/client.ts'))) {
  const code = run(['scripts/prisma-generate.mjs']);
  if (code !== 0) process.exit(code);
}
let code = run(['scripts/lint-workflows.mjs']);
if (code !== 0) process.exit(code);
code = run([path.join(root, 'node_modules/vitest/vitest.mjs'), 'run', ...process.argv.slice(2)]);
process.exit(code);
