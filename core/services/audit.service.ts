import { asSystem, type Db } from '../db.ts';

// Every admin change leaves a row: who, what, before, after. Secrets never go
// in: callers pass the public view of what changed. A workspace's own changes
// carry its id, so its owners and admins may read them (row-level security);
// writing is declared system work.
export function createAuditService({ db }: { db: Db }) {
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
  };
}

export type AuditService = ReturnType<typeof createAuditService>;
