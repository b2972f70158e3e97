import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { ConfigError, parseConfig } from '../core/config.ts';
import { resolveSecretKey } from '../core/runtime/secret-key.runtime.ts';
import { repoRoot, startStack } from '../core/runtime/stack.runtime.ts';

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
const stack = await startStack({
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

const env = {
  ...process.env,
  HANGAR_DATA_DIR: dataDir,
  DATABASE_URL: stack.databaseUrl,
  TEMPORAL_ADDRESS: stack.temporalAddress,
  HANGAR_SECRET_KEY: resolveSecretKey({ ...config, dataDir }),
};

let stopping = false;
const children = new Map<string, ChildProcess>();
function launch(name: string, entry: string, restarts = 0): void {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], { cwd: repoRoot, env, stdio: ['ignore', 'inherit', 'inherit'] });
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

log(`Web UI:      http://localhost:${config.port}/  (first boot opens the setup wizard)`);
log(`API:         http://localhost:${config.port}/api`);
log(`API docs:    http://localhost:${config.port}/docs`);
if (stack.temporalUiUrl) log(`Temporal UI: ${stack.temporalUiUrl}`);
log(`data kept in ${dataDir}; Ctrl-C stops everything`);

async function shutdown() {
  if (stopping) return;
  stopping = true;
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
process.on('SIGINT', () => void shutdown());
process.on('SIGTERM', () => void shutdown());
