import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { PrismaPg } from '@prisma/adapter-pg';
import { bindMigrationAwareSqlAdapterFactory } from '@prisma/driver-adapter-utils';

// Migrations with Prisma's own schema engine compiled to WebAssembly, driven
// through the pg driver adapter: the native engine cannot be downloaded on our
// build machines. `applyMigrations` does what `prisma migrate deploy` does
// (same `_prisma_migrations` table, same advisory lock); `diffMigration`
// writes a new migration folder from schema.prisma.

const here = path.dirname(fileURLToPath(import.meta.url));
export const MIGRATIONS_DIR = path.join(here, 'migrations');
export const SCHEMA_PATH = path.join(here, 'schema.prisma');
const require = createRequire(import.meta.url);
const NO_FILTER = { externalTables: [], externalEnums: [] };

interface WasmSchemaEngine {
  applyMigrations(input: unknown): Promise<{ appliedMigrationNames: string[] }>;
  diff(input: unknown): Promise<{ exitCode: number; stdout: string | null }>;
  free(): void;
}

let glue: Promise<{ SchemaEngine: { new: (o: unknown, cb: (m: string) => void, a: unknown) => Promise<WasmSchemaEngine> } }> | null = null;

/**
 * Loads the engine without `--experimental-wasm-modules`: instantiate the
 * .wasm ourselves and hand it to wasm-bindgen's glue, as its ESM entry would.
 */
function loadEngine() {
  glue ??= (async () => {
    const bgPath = require.resolve('@prisma/schema-engine-wasm/schema_engine_bg');
    const bg = await import(pathToFileURL(bgPath).href);
    const dir = path.dirname(bgPath);
    const bytes = await readFile(path.join(dir, 'schema_engine_bg.wasm'));
    const { instance } = await WebAssembly.instantiate(bytes, { './schema_engine_bg.js': bg });
    bg.__wbg_set_wasm(instance.exports);
    (instance.exports.__wbindgen_start as () => void)?.();
    return bg;
  })();
  return glue;
}

/** Discrete fields: the adapter's own shadow database logic overrides `database`, which a connectionString would beat. */
function pgConfig(databaseUrl: string) {
  const u = new URL(databaseUrl);
  return {
    host: u.hostname,
    port: u.port ? Number(u.port) : 5432,
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: decodeURIComponent(u.pathname.slice(1)) || 'postgres',
    ssl: u.searchParams.get('sslmode') === 'require' ? { rejectUnauthorized: false } : undefined,
  };
}

async function withEngine<T>(databaseUrl: string, fn: (engine: WasmSchemaEngine) => Promise<T>, log: (m: string) => void): Promise<T> {
  const { SchemaEngine } = await loadEngine();
  const schema = await readFile(SCHEMA_PATH, 'utf8');
  const adapter = bindMigrationAwareSqlAdapterFactory(new PrismaPg(pgConfig(databaseUrl)));
  const engine = await SchemaEngine.new({ datamodels: [[SCHEMA_PATH, schema]] }, (m: string) => log(m), adapter);
  try {
    return await fn(engine);
  } finally {
    engine.free();
  }
}

async function migrationsList(dir = MIGRATIONS_DIR) {
  const entries = existsSync(dir) ? await readdir(dir, { withFileTypes: true }) : [];
  const dirs = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
  const lockPath = path.join(dir, 'migration_lock.toml');
  return {
    baseDir: dir,
    lockfile: { path: 'migration_lock.toml', content: existsSync(lockPath) ? await readFile(lockPath, 'utf8') : null },
    shadowDbInitScript: '',
    migrationDirectories: await Promise.all(
      dirs.map(async (name) => {
        const file = path.join(dir, name, 'migration.sql');
        return {
          path: name,
          migrationFile: {
            path: 'migration.sql',
            content: existsSync(file)
              ? { tag: 'ok' as const, value: await readFile(file, 'utf8') }
              : { tag: 'error' as const, value: `missing ${file}` },
          },
        };
      }),
    ),
  };
}

/** Applies every pending migration; safe to call from several processes at once. */
export async function applyMigrations(
  databaseUrl: string,
  opts: { migrationsDir?: string; log?: (msg: string) => void } = {},
): Promise<{ applied: string[] }> {
  // One at a time within a process (the engine's instance is shared); across
  // processes the engine's advisory lock serialises.
  const run = applyQueue.then(() => applyOnce(databaseUrl, opts));
  applyQueue = run.catch(() => undefined);
  return run;
}

let applyQueue: Promise<unknown> = Promise.resolve();

async function applyOnce(databaseUrl: string, opts: { migrationsDir?: string; log?: (msg: string) => void }) {
  const list = await migrationsList(opts.migrationsDir);
  const out = await withEngine(
    databaseUrl,
    (engine) => engine.applyMigrations({ migrationsList: list, filters: NO_FILTER }),
    opts.log ?? (() => undefined),
  );
  return { applied: out.appliedMigrationNames };
}

/**
 * Writes `prisma/migrations/<timestamp>_<name>/migration.sql` with the SQL that
 * takes the last migration's schema to schema.prisma. Each migration folder
 * keeps the schema it was made from (`schema.prisma`), so the engine diffs two
 * datamodels and needs no database: describing a live Postgres through the
 * driver adapter fails on pg's "char" columns. Null when nothing changed.
 */
export async function diffMigration(opts: { databaseUrl: string; name: string; migrationsDir?: string }): Promise<string | null> {
  if (!/^[a-z0-9_]{1,60}$/.test(opts.name)) throw new Error('--name must be lower_snake_case (a-z, 0-9, _)');
  const dir = opts.migrationsDir ?? MIGRATIONS_DIR;
  const list = await migrationsList(dir);
  const last = list.migrationDirectories.at(-1);
  const snapshot = last ? path.join(dir, last.path, 'schema.prisma') : null;
  if (last && !existsSync(snapshot!)) throw new Error(`${last.path} has no schema.prisma snapshot to diff from`);
  const schema = await readFile(SCHEMA_PATH, 'utf8');
  const result = await withEngine(
    // The engine connects at construction, though a datamodel diff reads nothing from it.
    opts.databaseUrl,
    (engine) =>
      engine.diff({
        from: snapshot ? { tag: 'schemaDatamodel', files: [{ path: snapshot, content: readFileSync(snapshot, 'utf8') }] } : { tag: 'empty' },
        to: { tag: 'schemaDatamodel', files: [{ path: SCHEMA_PATH, content: schema }] },
        script: true,
        exitCode: true,
        filters: NO_FILTER,
      }),
    () => undefined,
  );
  const sql = (result.stdout ?? '').trim();
  if (result.exitCode === 0 || !sql || sql === '-- This is an empty migration.') return null;
  const stamp = new Date().toISOString().replace(/\D/g, '').slice(0, 14);
  const folder = path.join(dir, `${stamp}_${opts.name}`);
  await mkdir(folder, { recursive: true });
  await writeFile(path.join(folder, 'migration.sql'), `${sql}\n`);
  await writeFile(path.join(folder, 'schema.prisma'), schema);
  await writeFile(path.join(dir, 'migration_lock.toml'), '# Written by npm run db:diff. Do not edit.\nprovider = "postgresql"\n');
  return folder;
}
