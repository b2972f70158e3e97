#!/usr/bin/env node
// `npm run build`: the production build. The sources compiled to plain
// JavaScript in dist/ (tsconfig.build.json: emit only, type checking is
// `npm run typecheck`'s job) and the workflow bundle prebuilt to
// dist/workflow-bundle.js, so a production worker neither loads tsx nor runs
// webpack at boot (both cost memory the whole life of the process).
// `--out-dir DIR` writes elsewhere than dist/ (docker/hangar/build.sh stages
// the image's copy there, leaving the checkout's dist/ to whoever uses it).
import { spawnSync } from 'node:child_process';
import { cpSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const { values } = parseArgs({ options: { 'out-dir': { type: 'string' } } });
const outDir = path.resolve(root, values['out-dir'] ?? 'dist');
rmSync(outDir, { recursive: true, force: true });
// The client tsc compiles must be the schema's (missing or stale: made again).
const generated = spawnSync(process.execPath, [path.join(root, 'scripts/prisma-generate.mjs'), '--if-stale'], { cwd: root, stdio: 'inherit' });
if (generated.status !== 0) process.exit(generated.status ?? 1);
const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', outDir], { cwd: root, stdio: 'inherit' });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);
// tsc emits only what it compiles: the plain-JavaScript modules beside the
// sources (the password hashing worker, core/workers/password.worker.mjs,
// which piscina loads by path) are copied as they are.
for (const dir of ['core', 'activities', 'worker', 'api']) {
  for (const file of readdirSync(path.join(root, dir), { recursive: true, encoding: 'utf8' })) {
    if (file.endsWith('.mjs') && !file.split(path.sep).includes('generated')) cpSync(path.join(root, dir, file), path.join(outDir, dir, file));
  }
}
const { bundleWorkflowCode, DefaultLogger } = await import('@temporalio/worker');
const { code } = await bundleWorkflowCode({ workflowsPath: path.join(root, 'workflows/index.ts'), logger: new DefaultLogger('WARN') });
writeFileSync(path.join(outDir, 'workflow-bundle.js'), code);
console.log(`[build] ${path.relative(root, outDir) || outDir}/ and its workflow-bundle.js (${(code.length / 1024).toFixed(0)} kB) written`);
