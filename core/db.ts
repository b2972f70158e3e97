import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from './generated/prisma/client.ts';

export type Db = PrismaClient;
export * from './generated/prisma/client.ts';

/** One client per process; the pg adapter pools connections itself. */
export function createDb(databaseUrl: string, opts: { max?: number } = {}): Db {
  return new PrismaClient({ adapter: new PrismaPg({ connectionString: databaseUrl, max: opts.max ?? 10 }) });
}

export type Tx = Parameters<Parameters<Db['$transaction']>[0]>[0];

/**
 * Runs `fn` in a transaction that row-level security sees as this user's:
 * tenant tables show only their rows, whatever the query forgets.
 */
export function asUser<T>(db: Db, userId: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return db.$transaction(async (tx) => {
    await tx.$queryRaw`SELECT set_config('app.current_user_id', ${userId}, true)`;
    return fn(tx);
  });
}

/** System work (the worker, lookups before the user is known): declared, never implied. */
export function asSystem<T>(db: Db, fn: (tx: Tx) => Promise<T>, opts: { timeoutMs?: number } = {}): Promise<T> {
  return db.$transaction(
    async (tx) => {
      await tx.$queryRaw`SELECT set_config('app.system', 'on', true)`;
      return fn(tx);
    },
    { timeout: opts.timeoutMs ?? 5000 },
  );
}

/**
 * Row-level security only binds a role that is neither superuser nor
 * BYPASSRLS. Production refuses such a role; development warns.
 */
export async function checkDatabaseRole(db: Db, mode: string, warn: (m: string) => void): Promise<void> {
  const [role] = await db.$queryRaw<{ rolname: string; rolsuper: boolean; rolbypassrls: boolean }[]>`
    SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user`;
  if (role && (role.rolsuper || role.rolbypassrls)) {
    const msg = `database role "${role.rolname}" is a superuser or has BYPASSRLS: row-level security does not protect tenants. Connect as a member of hangar_app.`;
    if (mode === 'production') throw new Error(msg);
    warn(msg);
  }
}

/** The `meta` of a list answer (API.md: lists). */
export function pageMeta(total: number, page: number, limit: number) {
  return { total, page, limit, totalPages: Math.max(1, Math.ceil(total / limit)) };
}
