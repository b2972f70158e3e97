import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { ConfigError, parseConfig } from '../core/config.ts';
import { resolveSecretKey } from '../core/runtime/secret-key.runtime.ts';
import { runsCompiled } from '../core/runtime/paths.runtime.ts';
import { withProcessDefaults } from '../core/runtime/process-defaults.runtime.ts';
import { repoRoot, startStack, type RunningStack } from '../core/runtime/stack.runtime.ts';

// The whole of Hangar on one machine: embedded Postgres and the Temporal dev
// server (unless DATABASE_URL / TEMPORAL_ADDRESS), then the worker and the API
// as their own processes. Ctrl-C stops everything and keeps .data/.
const log = (m: string) => console.log(`[hangar] ${m}`);

let config;
try {
  config = parseConfig();
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(2);
}
const dataDir = path.resolve(repoRoot, config.dataDir);

// Signals are handled from the very start: a SIGTERM while Postgres or
// Temporal is still coming up must stop them too, not leave them orphaned.
let stopping = false;
const children = new Map<string, ChildProcess>();
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => void shutdown());

let stack: RunningStack | null = null;
stack = await startStack({
  dataDir,
  databaseUrl: config.databaseUrl,
  migrationDatabaseUrl: process.env.HANGAR_MIGRATION_DATABASE_URL,
  temporalAddress: config.temporalAddress,
  pgPort: Number(process.env.HANGAR_PG_PORT ?? 54329),
  temporalPort: Number(process.env.HANGAR_TEMPORAL_PORT ?? 7233),
  temporalUiPort: Number(process.env.HANGAR_TEMPORAL_UI_PORT ?? 8233),
  persistent: true,
  agentImage: config.agentImage,
  agentRuntime: config.agentRuntime,
  log,
});
if (stopping) await shutdown(true);

const env = withProcessDefaults({
  ...process.env,
  HANGAR_DATA_DIR: dataDir,
  DATABASE_URL: stack.databaseUrl,
  TEMPORAL_ADDRESS: stack.temporalAddress,
  HANGAR_SECRET_KEY: resolveSecretKey({ ...config, dataDir }),
});

function launch(name: string, entry: string, restarts = 0): void {
  if (stopping) return;
  // Compiled (`npm run start:prod`), the children run the compiled build too: no tsx in any process.
  const args = runsCompiled ? [path.join('dist', entry.replace(/\.ts$/, '.js'))] : ['--import', 'tsx', entry];
  const child = spawn(process.execPath, args, { cwd: repoRoot, env, stdio: ['ignore', 'inherit', 'inherit'] });
  children.set(name, child);
  child.on('exit', (code, signal) => {
    if (stopping) return;
    // A crashed process comes back: Temporal resumes whatever it was doing.
    log(`${name} exited (${signal ?? code}); restarting in 2s`);
    if (restarts < 20) setTimeout(() => launch(name, entry, restarts + 1), 2000);
  });
}
launch('worker', 'worker/main.ts');
launch('api', 'api/server.ts');

// First boot: the one-time code that claims this instance, for the person at
// this console only (asked of the CLI, so this supervisor stays small).
const setupCode = await promisify(execFile)(process.execPath, ['bin/hangar.mjs', 'setup-code'], { cwd: repoRoot, env })
  .then(({ stdout }) => stdout.trim(), (err) => `(could not read it: ${(err as Error).message}; run npx hangar setup-code)`);
log(`Web UI:      http://localhost:${config.port}/  (first boot opens the setup wizard)`);
if (!/claimed already/.test(setupCode)) log(`Setup code:  ${setupCode}  (the wizard asks for it; \`npx hangar setup-code\` shows it again)`);
log(`API:         http://localhost:${config.port}/api`);
log(`API docs:    http://localhost:${config.port}/docs`);
if (stack.temporalUiUrl) log(`Temporal UI: ${stack.temporalUiUrl}`);
log(`data kept in ${dataDir}; Ctrl-C stops everything`);

/** Stops the worker and API, then Postgres and Temporal; `afterStart` finishes a stop that came during startup. */
async function shutdown(afterStart = false): Promise<void> {
  if (stopping && !afterStart) return;
  stopping = true;
  // Still starting: startStack's result is awaited above, then this runs again.
  if (!stack) return;
  log('stopping…');
  await Promise.all(
    [...children.values()].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          const t = setTimeout(() => c.kill('SIGKILL'), 15_000);
          c.once('exit', () => {
            clearTimeout(t);
            resolve();
          });
          c.kill('SIGTERM');
        }),
    ),
  );
  await stack.stop();
  log('stopped; data kept');
  process.exit(0);
}
