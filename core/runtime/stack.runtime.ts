import { spawn } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import Docker from 'dockerode';
import { applyMigrations } from '../../prisma/migrate.ts';
import type { AgentRuntime } from '../config.ts';
import { ensureAppLogin, startEmbeddedPostgres, type RunningPostgres } from './postgres.runtime.ts';
import { startTemporalDevServer, type RunningTemporal } from './temporal-dev.runtime.ts';

import { repoRoot } from './paths.runtime.ts';

export { repoRoot };

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
  /** Which agent image to build when it is missing (default: the reference agent). */
  agentRuntime?: AgentRuntime;
  /** Run the build script even when the image exists (a cache hit when nothing changed): tests. */
  refreshAgentImage?: boolean;
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
    const dockerReady = ensureAgentImage(opts.agentImage, opts.log, opts.agentRuntime, { refresh: opts.refreshAgentImage });
    // Failing later is fine, but never unhandled while Postgres and Temporal start.
    dockerReady.catch(() => undefined);

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

/** The build script of each runtime's image. */
const BUILD_SCRIPTS: Record<AgentRuntime, string> = {
  reference: 'docker/agent/build.sh',
  openclaw: 'docker/openclaw/build.sh',
};

/**
 * Runs a runtime's build script for TAG, its progress lines going to log;
 * resolves with the image id. The OpenClaw build reuses an image whose inputs
 * are unchanged, so calling this once per test run is cheap after the first.
 */
export function buildAgentImage(runtime: AgentRuntime, tag: string, log: (m: string) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [path.join(repoRoot, BUILD_SCRIPTS[runtime]), '--tag', tag], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let tail = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    let pending = '';
    child.stderr.on('data', (d: Buffer) => {
      pending += d.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines.filter((l) => l.trim())) {
        tail = `${tail}\n${line}`.slice(-2000);
        // The classic builder's deprecation notice is noise here.
        if (!/DEPRECATED|BuildKit|environment-variable|^\s*$/.test(line)) log(line);
      }
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(out.trim().split('\n').pop() ?? '');
      else reject(new Error(`${BUILD_SCRIPTS[runtime]} failed (exit ${code}):${tail}`));
    });
  });
}

/**
 * Builds the agent image when it is missing (no registry needed). An OpenClaw
 * image this repository built (it carries dev.hangar.build-inputs) is also
 * brought up to date: build.sh returns at once when its inputs are unchanged,
 * and rebuilds after a version bump in docker/openclaw/package-lock.json — a
 * new digest that the image poller then rolls out like any other. A reference
 * agent image of another version than this checkout's is rebuilt too (its
 * contract with Hangar changes between versions).
 */
export async function ensureAgentImage(image: string, log: (m: string) => void, runtime: AgentRuntime = 'reference', opts: { refresh?: boolean } = {}): Promise<void> {
  const docker = new Docker();
  try {
    await docker.ping();
  } catch {
    throw new Error('No Docker engine answers (is dockerd running? DOCKER_HOST honoured). .ci/run shows how to install and start one.');
  }
  const existing = await docker.getImage(image).inspect().catch(() => null);
  const labels = existing?.Config?.Labels ?? {};
  const ours = Boolean(labels['dev.hangar.build-inputs']);
  let stale = false;
  if (existing && runtime === 'reference' && labels['org.opencontainers.image.title'] === 'hangar-agent') {
    const wanted = JSON.parse(await readFile(path.join(repoRoot, 'docker/agent/changelog.json'), 'utf8')).version as string;
    stale = labels['org.opencontainers.image.version'] !== wanted;
    if (stale) log(`rebuilding agent image ${image} (reference agent ${labels['org.opencontainers.image.version']} → ${wanted})`);
  }
  if (existing && !opts.refresh && !stale && !(runtime === 'openclaw' && ours)) return;
  if (!existing) log(`building ${runtime} agent image ${image} (first run only${runtime === 'openclaw' ? '; OpenClaw is ~650 MB from npm, a few minutes' : ''})`);
  const [name, tag = 'latest'] = image.split(':');
  await buildAgentImage(runtime, `${name}:${tag}`, log);
}
