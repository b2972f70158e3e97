import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { applyMigrations, diffMigration, MIGRATIONS_DIR, SCHEMA_PATH } from '../../prisma/migrate.ts';

// The migration runner (Prisma's WebAssembly schema engine) against the run's
// real Postgres, as its owner (it creates and drops databases).
const adminUrl = inject('stack').adminDatabaseUrl ?? undefined;
const repoRoot = path.resolve(path.dirname(SCHEMA_PATH), '..');

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

function databaseUrl(name: string): string {
  const u = new URL(adminUrl!);
  u.pathname = `/${name}`;
  return u.href;
}

const created: string[] = [];
async function freshDatabase(): Promise<string> {
  const name = `hangar_migrate_test_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  await query(adminUrl!, `CREATE DATABASE ${name}`);
  created.push(name);
  return databaseUrl(name);
}

const shadowDatabases = () => query<{ datname: string }>(adminUrl!, "SELECT datname FROM pg_database WHERE datname LIKE 'hangar_shadow_%'");

async function migrationNames(): Promise<string[]> {
  const entries = await readdir(MIGRATIONS_DIR, { withFileTypes: true });
  return entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
}

/** `prisma/migrate.cli.ts deploy` in its own process. */
function deploy(url: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'prisma/migrate.cli.ts', 'deploy'], {
      cwd: repoRoot,
      env: { ...process.env, DATABASE_URL: url },
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

describe.skipIf(!adminUrl)('migrations (Prisma schema engine, WebAssembly)', () => {
  let shadowsBefore: string[] = [];
  beforeAll(async () => {
    shadowsBefore = (await shadowDatabases()).map((r) => r.datname);
  });

  afterAll(async () => {
    if (!adminUrl) return;
    for (const name of created) await query(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  });

  it('applies every migration to an empty database, as `prisma migrate deploy` records them, then is a no-op', async () => {
    const url = await freshDatabase();
    const expected = await migrationNames();
    const log: string[] = [];

    expect((await applyMigrations(url, { log: (m) => log.push(m) })).applied).toEqual(expected);
    expect(log.some((m) => m.startsWith('Applying'))).toBe(true);

    const rows = await query<{ migration_name: string; finished_at: Date | null; rolled_back_at: Date | null; checksum: string }>(
      url,
      'SELECT migration_name, finished_at, rolled_back_at, checksum FROM _prisma_migrations ORDER BY migration_name',
    );
    expect(rows.map((r) => r.migration_name)).toEqual(expected);
    for (const r of rows) {
      expect(r.finished_at).toBeInstanceOf(Date);
      expect(r.rolled_back_at).toBeNull();
      expect(r.checksum).toMatch(/^[0-9a-f]{64}$/);
    }
    const [tables] = await query<{ agents: string | null; users: string | null }>(
      url,
      "SELECT to_regclass('public.agents')::text AS agents, to_regclass('public.users')::text AS users",
    );
    expect(tables).toEqual({ agents: 'agents', users: 'users' });

    expect((await applyMigrations(url)).applied).toEqual([]);
    expect(await query(url, 'SELECT 1 FROM _prisma_migrations')).toHaveLength(expected.length);
  });

  it('applies once when two processes deploy at the same moment (the engine’s advisory lock)', async () => {
    const url = await freshDatabase();
    const [a, b] = await Promise.all([deploy(url), deploy(url)]);
    expect(a.code, a.out).toBe(0);
    expect(b.code, b.out).toBe(0);
    expect([a.out, b.out].filter((o) => o.includes('applied:'))).toHaveLength(1);
    expect([a.out, b.out].filter((o) => o.includes('database is up to date'))).toHaveLength(1);
    const rows = await query(url, 'SELECT migration_name FROM _prisma_migrations');
    expect(rows).toHaveLength((await migrationNames()).length);
  }, 60_000);

  it('fails with a clear message and a non-zero exit when the database is unreachable', async () => {
    const u = new URL(adminUrl!);
    u.port = '1';
    const r = await deploy(u.href);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/migration failed: .*127\.0\.0\.1:1|migration failed: .*ECONNREFUSED/);
  }, 30_000);

  describe('diff', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'hangar-migrations-'));
      await cp(MIGRATIONS_DIR, dir, { recursive: true });
    });
    afterAll(async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('finds schema.prisma and the migrations in agreement (a schema change without its migration fails here)', async () => {
      expect(await diffMigration({ databaseUrl: adminUrl, name: 'nothing', migrationsDir: dir })).toBeNull();
    });

    it('writes the SQL for a schema change as a new, last migration folder', async () => {
      const schemaPath = path.join(dir, 'changed.prisma');
      await writeFile(schemaPath, `${await readFile(SCHEMA_PATH, 'utf8')}\nmodel DiffProbe {\n  id   String @id\n  note String?\n}\n`);
      await rm(path.join(dir, 'migration_lock.toml'), { force: true });

      const folder = await diffMigration({ databaseUrl: adminUrl, name: 'add_probe', migrationsDir: dir, schemaPath });
      expect(folder).not.toBeNull();
      expect(path.basename(folder!)).toMatch(/^\d{14}_add_probe$/);
      expect(path.basename(folder!) > (await migrationNames()).at(-1)!).toBe(true);
      const sql = await readFile(path.join(folder!, 'migration.sql'), 'utf8');
      expect(sql).toContain('CREATE TABLE "DiffProbe"');
      expect(sql).not.toMatch(/DROP|ALTER TABLE "(users|agents)"/);
      expect(await readFile(path.join(dir, 'migration_lock.toml'), 'utf8')).toContain('provider = "postgresql"');

      // The new folder applies, after which the same change diffs to nothing.
      const url = await freshDatabase();
      expect((await applyMigrations(url, { migrationsDir: dir })).applied.at(-1)).toBe(path.basename(folder!));
      expect(await diffMigration({ databaseUrl: adminUrl, name: 'again', migrationsDir: dir, schemaPath })).toBeNull();
    }, 60_000);

    it('leaves no shadow database behind', async () => {
      expect((await shadowDatabases()).map((r) => r.datname)).toEqual(shadowsBefore);
    });

    it('refuses a bad migration name', async () => {
      await expect(diffMigration({ databaseUrl: adminUrl, name: 'Bad Name', migrationsDir: dir })).rejects.toThrow(/lower_snake_case/);
    });
  });
});
