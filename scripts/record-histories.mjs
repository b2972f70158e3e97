#!/usr/bin/env node
// `npm run histories:record`: runs the workflow tier with HANGAR_RECORD_HISTORIES
// set, so each test that names a run writes its history to
// test/workflow/histories/<name>.json (see keepHistory in
// test/support/workflow-tier.harness.ts). The replay test then replays them
// on every `npm test`. Files are overwritten by name; delete ones whose test is gone.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const r = spawnSync(
  process.execPath,
  [path.join(root, 'node_modules/vitest/vitest.mjs'), 'run', '--project', 'workflow', '--exclude', 'test/workflow/replay.test.ts', ...process.argv.slice(2)],
  { cwd: root, stdio: 'inherit', env: { ...process.env, HANGAR_RECORD_HISTORIES: '1' } },
);
if (r.status !== 0) {
  console.error('the workflow tier failed: histories from a failing run are not worth keeping; fix it first');
  process.exit(r.status ?? 1);
}
const dir = path.join(root, 'test/workflow/histories');
console.log(`${readdirSync(dir).filter((f) => f.endsWith('.json')).length} histories in ${path.relative(root, dir)}`);
