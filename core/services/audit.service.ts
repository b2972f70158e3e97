import type { Prisma } from '../generated/prisma/client.ts';
import { asSystem, type Db } from '../db.ts';

// Every admin change leaves a row: who, what, before, after. Secrets never go
// in: callers pass the public view of what changed. A workspace's own changes
// carry its id, so its owners and admins may read them (row-level security);
// writing and the admin's reads of the whole log are declared system work.

export interface AuditQuery {
  /** Exact actor (a user id). */
  actorId?: string;
  /** An action, or a prefix of one ending in a dot: `user.` is every user change. */
  action?: string;
  /** A target (`user:<id>`), or a prefix ending in a colon: `rollout:`. */
  target?: string;
  from?: Date;
  to?: Date;
}

export interface AuditEntry {
  id: string;
  at: string;
  actorId: string | null;
  actorName: string | null;
  action: string;
  target: string;
  before: unknown;
  after: unknown;
}

type AuditRow = Awaited<ReturnType<Db['auditLog']['findFirstOrThrow']>>;

const prefixOr = (value: string, sep: string) => (value.endsWith(sep) ? { startsWith: value } : value);

function whereOf(q: AuditQuery): Prisma.AuditLogWhereInput {
  return {
    ...(q.actorId ? { actorId: q.actorId } : {}),
    ...(q.action ? { action: prefixOr(q.action, '.') } : {}),
    ...(q.target ? { target: prefixOr(q.target, ':') } : {}),
    ...(q.from || q.to ? { at: { ...(q.from ? { gte: q.from } : {}), ...(q.to ? { lt: q.to } : {}) } } : {}),
  };
}

export function createAuditService({ db }: { db: Db }) {
  /** Rows as the API shows them, each with its actor's display name (null for the system or a removed user). */
  async function withActors(rows: AuditRow[]): Promise<AuditEntry[]> {
    const ids = [...new Set(rows.map((r) => r.actorId).filter((x): x is string => Boolean(x)))];
    const actors = ids.length ? await db.user.findMany({ where: { id: { in: ids } }, select: { id: true, displayName: true } }) : [];
    const names = new Map(actors.map((a) => [a.id, a.displayName]));
    return rows.map((r) => ({
      id: r.id,
      at: r.at.toISOString(),
      actorId: r.actorId,
      actorName: r.actorId ? (names.get(r.actorId) ?? null) : null,
      action: r.action,
      target: r.target,
      before: r.before ?? null,
      after: r.after ?? null,
    }));
  }

  const NEWEST_FIRST = [{ at: 'desc' as const }, { id: 'desc' as const }];

  return {
    async record(entry: { actorId: string | null; action: string; target: string; workspaceId?: string | null; before?: unknown; after?: unknown }): Promise<void> {
      await asSystem(db, (tx) => tx.auditLog.create({
        data: {
          actorId: entry.actorId,
          workspaceId: entry.workspaceId ?? null,
          action: entry.action,
          target: entry.target,
          before: (entry.before ?? undefined) as object | undefined,
          after: (entry.after ?? undefined) as object | undefined,
        },
      }));
    },

    /** Newest first. */
    async list(q: AuditQuery, page: number, limit: number): Promise<{ total: number; rows: AuditEntry[] }> {
      const where = whereOf(q);
      const [total, rows] = await Promise.all([
        asSystem(db, (tx) => tx.auditLog.count({ where })),
        asSystem(db, (tx) => tx.auditLog.findMany({ where, orderBy: NEWEST_FIRST, skip: (page - 1) * limit, take: limit })),
      ]);
      return { total, rows: await withActors(rows) };
    },

    /** Entries about a user or by them, newest first (the admin's view of one user). */
    async about(userId: string, limit = 20): Promise<AuditEntry[]> {
      const rows = await asSystem(db, (tx) => tx.auditLog.findMany({ where: { OR: [{ target: `user:${userId}` }, { actorId: userId }] }, orderBy: NEWEST_FIRST, take: limit }));
      return withActors(rows);
    },

    /**
     * Every matching entry, newest first, in batches (a CSV export of any size
     * never holds the whole log in memory). Keyset paging on (at, id): rows
     * written during the export neither repeat nor shift the pages.
     */
    async *all(q: AuditQuery, batch = 500): AsyncGenerator<AuditEntry[]> {
      const where = whereOf(q);
      let after: { at: Date; id: string } | null = null;
      for (let i = 0; i < 1_000_000; i++) {
        const cursor = after;
        const rows: AuditRow[] = await asSystem(db, (tx) =>
          tx.auditLog.findMany({
            where: cursor ? { AND: [where, { OR: [{ at: { lt: cursor.at } }, { at: cursor.at, id: { lt: cursor.id } }] }] } : where,
            orderBy: NEWEST_FIRST,
            take: batch,
          }),
        );
        if (rows.length) yield withActors(rows);
        if (rows.length < batch) return;
        const last = rows[rows.length - 1];
        after = { at: last.at, id: last.id };
      }
    },
  };
}

export type AuditService = ReturnType<typeof createAuditService>;

/** One CSV field (RFC 4180), with cells that a spreadsheet would run as a formula made inert. */
export function csvField(value: unknown): string {
  let s = value === null || value === undefined ? '' : typeof value === 'string' ? value : JSON.stringify(value);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export const AUDIT_CSV_COLUMNS = ['at', 'actorId', 'actorName', 'action', 'target', 'before', 'after'] as const;

export function auditCsvRow(e: AuditEntry): string {
  return `${AUDIT_CSV_COLUMNS.map((c) => csvField(e[c])).join(',')}\r\n`;
}
