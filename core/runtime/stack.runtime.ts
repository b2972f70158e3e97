import { execFile } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { applyMigrations } from '../../prisma/migrate.ts';
import { ensureAppLogin, startEmbeddedPostgres, type RunningPostgres } from './postgres.runtime.ts';
import { startTemporalDevServer, type RunningTemporal } from './temporal-dev.runtime.ts';

const run = promisify(execFile);
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface StackOptions {
  dataDir: string;
  databaseUrl?: string;
  /** Owner connection for migrations when DATABASE_URL is the (non-owner) application role. */
  migrationDatabaseUrl?: string;
  temporalAddress?: string;
  pgPort: number;
  temporalPort: number;
  temporalUiPort: number;
  /** false: a throwaway stack (tests) — in-memory Temporal, Postgres wiped at stop. */
  persistent: boolean;
  agentImage: string;
  log: (msg: string) => void;
}

export interface RunningStack {
  databaseUrl: string;
  /** Maintenance DB URL when Postgres is embedded (tests create databases there). */
  adminDatabaseUrl: string | null;
  temporalAddress: string;
  temporalUiUrl: string | null;
  stop(): Promise<void>;
}

/**
 * What `npm start` and the test run both need before any Hangar process:
 * Postgres (embedded unless DATABASE_URL), Temporal (dev server unless
 * TEMPORAL_ADDRESS), migrations applied, the agent image built if absent.
 */
export async function startStack(opts: StackOptions): Promise<RunningStack> {
  const stops: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    for (const s of stops.reverse()) await s().catch((e) => opts.log(`stop failed: ${(e as Error).message}`));
  };
  try {
    await mkdir(opts.dataDir, { recursive: true });
    const dockerReady = ensureAgentImage(opts.agentImage, opts.log);

    let pg: RunningPostgres | null = null;
    let databaseUrl = opts.databaseUrl;
    if (!databaseUrl) {
      pg = await startEmbeddedPostgres({ dataDir: path.join(opts.dataDir, 'pg'), port: opts.pgPort, persistent: opts.persistent, log: opts.log });
      stops.push(() => pg!.stop());
      databaseUrl = pg.url;
    }

    let temporal: RunningTemporal | null = null;
    let temporalAddress = opts.temporalAddress;
    if (!temporalAddress) {
      temporal = await startTemporalDevServer({
        port: opts.temporalPort,
        uiPort: opts.temporalUiPort,
        dbFile: opts.persistent ? path.resolve(opts.dataDir, 'temporal.db') : undefined,
        logFile: path.resolve(opts.dataDir, 'temporal.log'),
        headless: !opts.persistent,
      });
      stops.push(() => temporal!.stop());
      temporalAddress = temporal.address;
    }

    // Migrations run as the owner; the application connects as a non-superuser
    // member of hangar_app, so row-level security binds it.
    const { applied } = await applyMigrations(opts.migrationDatabaseUrl ?? databaseUrl);
    if (applied.length) opts.log(`applied migrations: ${applied.join(', ')}`);
    if (pg) databaseUrl = await ensureAppLogin(pg.url);
    await dockerReady;
    return {
      databaseUrl,
      adminDatabaseUrl: pg?.adminUrl ?? null,
      temporalAddress,
      temporalUiUrl: temporal?.uiUrl ?? null,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/**
 * Builds the reference agent image when it is missing, or when it is a
 * reference agent of another version than this checkout's (its contract with
 * Hangar changes between versions, e.g. 1.1.0's per-start gateway tokens).
 * No registry needed.
 */
export async function ensureAgentImage(image: string, log: (m: string) => void): Promise<void> {
  const docker = new Docker();
  try {
    await docker.ping();
  } catch {
    throw new Error('No Docker engine answers (is dockerd running? DOCKER_HOST honoured). .ci/run shows how to install and start one.');
  }
  try {
    const labels = (await docker.getImage(image).inspect()).Config?.Labels ?? {};
    const wanted = JSON.parse(await readFile(path.join(repoRoot, 'docker/agent/changelog.json'), 'utf8')).version as string;
    const have = labels['org.opencontainers.image.version'];
    if (labels['org.opencontainers.image.title'] !== 'hangar-agent' || have === wanted) return;
    log(`rebuilding agent image ${image} (reference agent ${have} → ${wanted})`);
  } catch {
    log(`building agent image ${image} (first run only)`);
  }
  const [name, tag = 'latest'] = image.split(':');
  await run('bash', [path.join(repoRoot, 'docker/agent/build.sh'), '--tag', `${name}:${tag}`], {
    cwd: repoRoot,
    maxBuffer: 64 * 1024 * 1024,
  });
}
