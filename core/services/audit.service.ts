import type { Db } from '../db.ts';

// Every admin change leaves a row: who, what, before, after. Secrets never go
// in: callers pass the public view of what changed.
export function createAuditService({ db }: { db: Db }) {
  return {
    async record(entry: { actorId: string | null; action: string; target: string; before?: unknown; after?: unknown }): Promise<void> {
      await db.auditLog.create({
        data: {
          actorId: entry.actorId,
          action: entry.action,
          target: entry.target,
          before: (entry.before ?? undefined) as object | undefined,
          after: (entry.after ?? undefined) as object | undefined,
        },
      });
    },
  };
}

export type AuditService = ReturnType<typeof createAuditService>;
