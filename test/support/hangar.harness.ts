import { randomUUID } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, inject } from 'vitest';
import { ensureDatabase } from '../../core/runtime/postgres.runtime.ts';
import { startTemporalDevServer, type RunningTemporal } from '../../core/runtime/temporal-dev.runtime.ts';
import { applyMigrations } from '../../prisma/migrate.ts';
import { startFakeOpenAI } from './fake-openai.ts';
import { removeAgentsFromDocker, startHangarOn, type Hangar } from './hangar.runtime.ts';
import { markOnboarded } from './global-setup.ts';
import { freePort } from './ports.ts';

type FakeOpenAI = Awaited<ReturnType<typeof startFakeOpenAI>>;

export * from './hangar.runtime.ts';

/** A Hangar on the stack the global setup started for this run. */
export function startHangar(overrides: Record<string, string> = {}, opts: { worker?: boolean } = {}): Promise<Hangar> {
  return startHangarOn(inject('stack'), overrides, opts);
}

export interface Scene {
  h: Hangar;
  fake: FakeOpenAI;
  /** The file's own Temporal server, when it asked for one. */
  temporal: RunningTemporal | null;
  /** Agents the tests made; their containers and volumes go in afterAll. */
  agentIds: string[];
}

/**
 * The usual file setup: a Hangar (API + worker, on an agent network of its
 * own) and a fake upstream allowlisted for its agents, cleaned up after the file. `ownTemporal` gives the file a Temporal server of its own
 * (for tests that stop it or tune it) instead of the run's shared one.
 */
export function useScene(opts: { overrides?: Record<string, string>; ownTemporal?: { dynamicConfig?: string[] } } = {}): Scene {
  const scene = { temporal: null, agentIds: [] } as unknown as Scene;
  beforeAll(async () => {
    const overrides = { ...opts.overrides };
    if (opts.ownTemporal) {
      scene.temporal = await startTemporalDevServer({
        port: await freePort(),
        headless: true,
        logFile: path.join(inject('stack').dataDir, `temporal-${process.pid}-${Date.now()}.log`),
        dynamicConfig: opts.ownTemporal.dynamicConfig,
      });
      overrides.TEMPORAL_ADDRESS = scene.temporal.address;
    }
    // The fake upstream first: agents reach it on the host, so its port goes on the egress allowlist.
    scene.fake = await startFakeOpenAI();
    scene.h = await startHangar({ HANGAR_EGRESS_ALLOW: `host:${scene.fake.port}`, ...overrides });
  });
  afterAll(async () => {
    if (scene.h) await removeAgentsFromDocker(scene.h.docker, scene.agentIds);
    await scene.h?.stop();
    await scene.temporal?.stop();
    await scene.fake?.close();
  });
  return scene;
}

/** A new, migrated, empty database on the run's Postgres (for tests that need "no users yet"). */
export async function freshDatabase(opts: { onboarded?: boolean } = {}): Promise<{ url: string; drop(): Promise<void> }> {
  const adminUrl = inject('stack').adminDatabaseUrl;
  if (!adminUrl) throw new Error('freshDatabase needs the embedded Postgres');
  const name = `fresh_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  await ensureDatabase(adminUrl, name);
  const url = adminUrl.replace(/\/postgres$/, `/${name}`);
  await applyMigrations(url);
  if (opts.onboarded !== false) await markOnboarded(url);
  const appUrl = new URL(inject('stack').databaseUrl);
  appUrl.pathname = `/${name}`;
  return {
    url: appUrl.href,
    async drop() {
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}
