import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseConfig } from '../core/config.ts';
import { repoRoot, runsCompiled } from '../core/runtime/paths.runtime.ts';
import { startWorkers } from './workers.ts';

// Worker process entry: `npm start` and the tests run it as its own process,
// so it can be killed mid-operation and brought back.
const config = parseConfig();
// Compiled (dist/), the workflow bundle `npm run build` wrote is used, so no
// webpack runs at boot; from the sources, it is built here.
const prebuilt = path.join(repoRoot, 'dist/workflow-bundle.js');
const bundlePath = process.env.HANGAR_WORKFLOW_BUNDLE || (runsCompiled && existsSync(prebuilt) ? prebuilt : undefined);
const workers = await startWorkers({
  config,
  databaseUrl: config.databaseUrl ?? '',
  temporalAddress: config.temporalAddress ?? '127.0.0.1:7233',
  workflowBundle: bundlePath ? { code: readFileSync(bundlePath, 'utf8') } : undefined,
  registerSchedules: process.env.HANGAR_REGISTER_SCHEDULES !== 'false',
});
console.log('[worker] ready');
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => void workers.shutdown().then(() => process.exit(0)));
}
await workers.done;
