import { asSystem, asUser, type Db } from '../db.ts';
import { NotFoundError } from '../errors.ts';

// Tokens through the chat proxy, per user, agent, model and UTC month, and
// admins' monthly budgets per user or workspace.
//
// The chat path only touches memory: `record` adds to a pending map, and
// `overBudget` compares a budget with this month's totals held in memory.
// A flusher (every HANGAR_USAGE_FLUSH_MS, and on close) writes the pending
// map in ONE upsert statement and then re-reads the month's totals, so they
// include what other API processes wrote. A budget check is therefore exact
// for this process's own traffic and stale by at most one flush interval for
// other processes' — an answer or two past a budget, never a flood.

export type BudgetScope = 'user' | 'workspace';
export type BudgetState = 'ok' | 'warning' | 'exceeded';

/** At this share of a budget the user is warned (the chat page shows a banner). */
export const WARN_PERCENT = 80;

export interface UsageRecord {
  userId: string;
  agentId: string;
  /** The workspace whose agent answered; null for a personal agent. */
  workspaceId: string | null;
  model: string;
  tokensIn: number;
  tokensOut: number;
}

export interface BudgetView {
  scope: BudgetScope;
  targetId: string;
  monthlyTokens: number;
  used: number;
  percent: number;
  state: BudgetState;
  resetsAt: string;
  updatedAt: string;
}

interface Pending extends UsageRecord {
  period: string;
  requests: number;
}

/** Rows to write, and their tokens per user and workspace for `period` (what the budget checks add). */
interface Batch {
  period: string;
  rows: Map<string, Pending>;
  byUser: Map<string, number>;
  byWorkspace: Map<string, number>;
}

const newBatch = (): Batch => ({ period: currentPeriodKey(), rows: new Map(), byUser: new Map(), byWorkspace: new Map() });

/** The UTC month `at` falls in, as its first instant. */
export function periodOf(at: Date = new Date()): Date {
  return new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1));
}

let periodKey = { key: '', from: 0, until: 0 };
/**
 * The current month as periodOf().toISOString(), made again only when the
 * clock leaves the month it was made for: it is read on every metered answer.
 */
export function currentPeriodKey(now = Date.now()): string {
  if (now < periodKey.from || now >= periodKey.until) {
    const at = new Date(now);
    const from = periodOf(at);
    periodKey = { key: from.toISOString(), from: from.getTime(), until: resetsAt(at).getTime() };
  }
  return periodKey.key;
}

/** When the month of `at` ends and its budgets start over. */
export function resetsAt(at: Date = new Date()): Date {
  return new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + 1, 1));
}

const budgetKey = (scope: BudgetScope, targetId: string) => `${scope}:${targetId}`;

/** A budget row as the checks hold it. */
const budgetOf = (b: { monthlyTokens: bigint; updatedAt: Date }) => ({ monthlyTokens: Number(b.monthlyTokens), updatedAt: b.updatedAt });

function stateOf(used: number, limit: number): { percent: number; state: BudgetState } {
  const percent = Math.floor((used / limit) * 1000) / 10;
  return { percent, state: used >= limit ? 'exceeded' : percent >= WARN_PERCENT ? 'warning' : 'ok' };
}

export function createUsageService({ db, flushMs }: { db: Db; flushMs: number }) {
  /** Every metered answer as it is recorded (the /metrics counters). */
  const observers: ((r: UsageRecord) => void)[] = [];
  const refusalObservers: ((scope: BudgetScope) => void)[] = [];
  let onError: (err: Error) => void = () => undefined;
  let pending = newBatch();
  /** A batch being written: still counted until the totals re-read includes it. */
  let inflight: Batch | null = null;
  let period = periodOf().toISOString();
  let userTotals = new Map<string, number>();
  let workspaceTotals = new Map<string, number>();
  let budgets = new Map<string, { monthlyTokens: number; updatedAt: Date }>();
  let budgetsVersion = 0;
  let timer: NodeJS.Timeout | null = null;
  let chain: Promise<void> = Promise.resolve();

  /** Tokens not yet in the stored totals: O(1) on the chat path, kept per user and workspace as they are recorded. */
  function unflushed(scope: BudgetScope, targetId: string): number {
    const now = currentPeriodKey();
    let n = 0;
    for (const b of [pending, inflight]) {
      if (b && b.period === now) n += (scope === 'user' ? b.byUser : b.byWorkspace).get(targetId) ?? 0;
    }
    return n;
  }

  /** This month's tokens (in + out) of a user or a workspace, as this process knows them. */
  function used(scope: BudgetScope, targetId: string): number {
    const current = currentPeriodKey() === period;
    const stored = current ? ((scope === 'user' ? userTotals : workspaceTotals).get(targetId) ?? 0) : 0;
    return stored + unflushed(scope, targetId);
  }

  function view(scope: BudgetScope, targetId: string, b: { monthlyTokens: number; updatedAt: Date }): BudgetView {
    const u = used(scope, targetId);
    return { scope, targetId, monthlyTokens: b.monthlyTokens, used: u, ...stateOf(u, b.monthlyTokens), resetsAt: resetsAt().toISOString(), updatedAt: b.updatedAt.toISOString() };
  }

  /** One upsert for the whole batch: rows arrive as parallel arrays. */
  async function write(batch: Batch) {
    const rows = [...batch.rows.values()];
    const col = <T>(f: (p: Pending) => T) => rows.map(f);
    await asSystem(db, (tx) => tx.$executeRaw`
      INSERT INTO usage_buckets ("userId", "agentId", "model", "period", "workspaceId", "tokensIn", "tokensOut", "requests", "updatedAt")
      SELECT u, a, m, p::timestamp, w, i::bigint, o::bigint, r::int, now()
      FROM unnest(${col((p) => p.userId)}::text[], ${col((p) => p.agentId)}::text[], ${col((p) => p.model)}::text[],
                  ${col((p) => p.period.replace('T', ' ').replace('Z', ''))}::text[], ${col((p) => p.workspaceId)}::text[],
                  ${col((p) => String(p.tokensIn))}::text[], ${col((p) => String(p.tokensOut))}::text[], ${col((p) => String(p.requests))}::text[])
        AS t(u, a, m, p, w, i, o, r)
      ON CONFLICT ("userId", "agentId", "model", "period") DO UPDATE SET
        "tokensIn" = usage_buckets."tokensIn" + EXCLUDED."tokensIn",
        "tokensOut" = usage_buckets."tokensOut" + EXCLUDED."tokensOut",
        "requests" = usage_buckets."requests" + EXCLUDED."requests",
        "updatedAt" = now()`);
  }

  /** The month's totals per user and per workspace, and every budget, from the database. */
  async function reload() {
    const now = periodOf();
    const version = budgetsVersion;
    const [rows, rowsOfBudgets] = await asSystem(db, async (tx) => [
      await tx.$queryRaw<{ userId: string; workspaceId: string | null; total: bigint }[]>`
        SELECT "userId", "workspaceId", SUM("tokensIn" + "tokensOut")::bigint AS total
        FROM usage_buckets WHERE "period" = ${now} GROUP BY "userId", "workspaceId"`,
      await tx.usageBudget.findMany(),
    ] as const);
    const users = new Map<string, number>();
    const workspaces = new Map<string, number>();
    for (const r of rows) {
      users.set(r.userId, (users.get(r.userId) ?? 0) + Number(r.total));
      if (r.workspaceId) workspaces.set(r.workspaceId, (workspaces.get(r.workspaceId) ?? 0) + Number(r.total));
    }
    userTotals = users;
    workspaceTotals = workspaces;
    period = now.toISOString();
    // A budget this process set or removed while the read was under way wins over the read.
    if (version === budgetsVersion) budgets = new Map(rowsOfBudgets.map((b) => [budgetKey(b.scope as BudgetScope, b.targetId), budgetOf(b)]));
  }

  /** Writes the pending batch, then (unless `reread` is off) re-reads the month's totals and the budgets. */
  async function tickOnce(reread = true) {
    const batch = pending;
    if (batch.rows.size > 0) {
      pending = newBatch();
      inflight = batch;
      try {
        await write(batch);
      } catch (err) {
        // Kept for the next flush: usage is never dropped because Postgres blinked.
        for (const [k, p] of batch.rows) merge(k, p);
        inflight = null;
        throw err;
      }
    }
    if (!reread) {
      inflight = null;
      return;
    }
    try {
      await reload();
    } finally {
      // The re-read includes the batch now (or, when it failed, the batch is in the database and the next re-read has it).
      inflight = null;
    }
  }

  function merge(key: string, p: Pending) {
    // A new month starts a new batch for the checks; rows of the old one are still written.
    if (p.period > pending.period) {
      pending.period = p.period;
      pending.byUser.clear();
      pending.byWorkspace.clear();
    }
    const had = pending.rows.get(key);
    if (!had) pending.rows.set(key, { ...p });
    else {
      had.tokensIn += p.tokensIn;
      had.tokensOut += p.tokensOut;
      had.requests += p.requests;
    }
    if (p.period !== pending.period) return;
    const n = p.tokensIn + p.tokensOut;
    pending.byUser.set(p.userId, (pending.byUser.get(p.userId) ?? 0) + n);
    if (p.workspaceId) pending.byWorkspace.set(p.workspaceId, (pending.byWorkspace.get(p.workspaceId) ?? 0) + n);
  }

  /** Flushes now, after any flush under way (the timer's and close's never overlap). */
  function flush(reread = true): Promise<void> {
    const run = chain.then(() => tickOnce(reread));
    chain = run.catch(() => undefined);
    return run;
  }

  /** Display names of users and workspaces, for the admin views. */
  async function names(userIds: string[], workspaceIds: string[]) {
    const [users, workspaces] = await asSystem(db, async (tx) => [
      userIds.length ? await tx.user.findMany({ where: { id: { in: userIds } }, select: { id: true, displayName: true } }) : [],
      workspaceIds.length ? await tx.workspace.findMany({ where: { id: { in: workspaceIds } }, select: { id: true, name: true } }) : [],
    ] as const);
    return { user: new Map(users.map((u) => [u.id, u.displayName])), workspace: new Map(workspaces.map((w) => [w.id, w.name])) };
  }

  return {
    /** An answer's tokens: memory only, written by the next flush. */
    record(r: UsageRecord): void {
      const p = currentPeriodKey();
      merge(JSON.stringify([r.userId, r.agentId, r.model, p]), { ...r, period: p, requests: 1 });
      for (const o of observers) o(r);
    },

    /** Starts the flusher (the API process); the first read of totals and budgets happens now. */
    async start(): Promise<void> {
      if (timer) return;
      timer = setInterval(() => void flush().catch((err: Error) => onError(err)), flushMs);
      timer.unref();
      await flush().catch((err: Error) => onError(err));
    },

    observe(fn: (r: UsageRecord) => void): void {
      observers.push(fn);
    },

    /** A chat refused over a budget (counted on /metrics). */
    refused(scope: BudgetScope): void {
      for (const o of refusalObservers) o(scope);
    },

    observeRefusals(fn: (scope: BudgetScope) => void): void {
      refusalObservers.push(fn);
    },

    /** Where a failed background flush is reported (the API's log); the batch is kept for the next one. */
    onFlushError(fn: (err: Error) => void): void {
      onError = fn;
    },

    /**
     * Writes what is still pending. No re-read: nothing will check a budget
     * after this, and a process that never metered (a worker) does no I/O.
     */
    async stop(): Promise<void> {
      if (timer) clearInterval(timer);
      timer = null;
      await flush(false).catch((err: Error) => onError(err));
    },

    /** Writes the pending usage and re-reads the month's totals and the budgets. */
    flush: (): Promise<void> => flush(),

    /** Budget views with the user's display name or the workspace's name. */
    async withNames(views: BudgetView[]): Promise<Array<BudgetView & { name: string | null }>> {
      const known = await names(views.filter((b) => b.scope === 'user').map((b) => b.targetId), views.filter((b) => b.scope === 'workspace').map((b) => b.targetId));
      return views.map((b) => ({ ...b, name: known[b.scope].get(b.targetId) ?? null }));
    },

    /**
     * The budget a chat would go past, if any: the user's own, then the
     * workspace's whose agent it is. Memory only (see the top of this file).
     */
    overBudget(userId: string, workspaceId: string | null): BudgetView | null {
      const targets: [BudgetScope, string | null][] = [['user', userId], ['workspace', workspaceId]];
      for (const [scope, id] of targets) {
        const b = id ? budgets.get(budgetKey(scope, id)) : undefined;
        if (b && used(scope, id!) >= b.monthlyTokens) return view(scope, id!, b);
      }
      return null;
    },

    /** The budgets that bind a user: their own and their workspaces'. */
    budgetsFor(userId: string, workspaceIds: string[]): BudgetView[] {
      const out: BudgetView[] = [];
      const own = budgets.get(budgetKey('user', userId));
      if (own) out.push(view('user', userId, own));
      for (const id of workspaceIds) {
        const b = budgets.get(budgetKey('workspace', id));
        if (b) out.push(view('workspace', id, b));
      }
      return out;
    },

    /** A user's rows this month, read as them (row-level security), and the workspaces they belong to. */
    async mine(userId: string) {
      const p = periodOf();
      return asUser(db, userId, async (tx) => ({
        rows: await tx.usageBucket.findMany({ where: { userId, period: p }, orderBy: [{ agentId: 'asc' }, { model: 'asc' }] }),
        workspaceIds: (await tx.workspaceMember.findMany({ where: { userId }, select: { workspaceId: true } })).map((m) => m.workspaceId),
      }));
    },

    /** A month's totals across the instance, per user, per workspace and per model, with the users' and workspaces' names (admins). */
    async totals(month: Date, limit: number) {
      const t = await asSystem(db, async (tx) => {
        const sum = { tokensIn: true, tokensOut: true, requests: true } as const;
        const where = { period: periodOf(month) };
        const [all, byUser, byWorkspace, byModel] = [
          await tx.usageBucket.aggregate({ where, _sum: sum }),
          await tx.usageBucket.groupBy({ by: ['userId'], where, _sum: sum, orderBy: { _sum: { tokensOut: 'desc' } }, take: limit }),
          await tx.usageBucket.groupBy({ by: ['workspaceId'], where: { ...where, workspaceId: { not: null } }, _sum: sum, orderBy: { _sum: { tokensOut: 'desc' } }, take: limit }),
          await tx.usageBucket.groupBy({ by: ['model'], where, _sum: sum, orderBy: { _sum: { tokensOut: 'desc' } }, take: limit }),
        ];
        return { all: all._sum, byUser, byWorkspace, byModel };
      });
      return { ...t, names: await names(t.byUser.map((r) => r.userId), t.byWorkspace.map((r) => r.workspaceId!)) };
    },

    /** Budgets from the database (another process may have set one since this one's last flush). */
    async listBudgets(): Promise<BudgetView[]> {
      const rows = await asSystem(db, (tx) => tx.usageBudget.findMany({ orderBy: [{ scope: 'asc' }, { targetId: 'asc' }] }));
      return rows.map((b) => view(b.scope as BudgetScope, b.targetId, budgetOf(b)));
    },

    async getBudget(scope: BudgetScope, targetId: string): Promise<BudgetView> {
      const b = await asSystem(db, (tx) => tx.usageBudget.findUnique({ where: { scope_targetId: { scope, targetId } } }));
      if (!b) throw new NotFoundError(`Budget for ${scope} ${targetId}`, 'budget_not_found');
      return view(scope, targetId, budgetOf(b));
    },

    /**
     * Sets (or replaces) the budget of an existing user or workspace, and
     * says what it was before (for the audit); this process applies it at
     * once, others at their next flush.
     */
    async setBudget(scope: BudgetScope, targetId: string, monthlyTokens: number, actorId: string): Promise<{ before: BudgetView | null; after: BudgetView }> {
      const { previous, row } = await asSystem(db, async (tx) => {
        const exists = scope === 'user' ? await tx.user.count({ where: { id: targetId } }) : await tx.workspace.count({ where: { id: targetId } });
        if (!exists) throw new NotFoundError(scope === 'user' ? 'User' : 'Workspace', scope === 'user' ? 'user_not_found' : 'workspace_not_found');
        return {
          previous: await tx.usageBudget.findUnique({ where: { scope_targetId: { scope, targetId } } }),
          row: await tx.usageBudget.upsert({
            where: { scope_targetId: { scope, targetId } },
            create: { scope, targetId, monthlyTokens: BigInt(monthlyTokens), createdById: actorId },
            update: { monthlyTokens: BigInt(monthlyTokens) },
          }),
        };
      });
      const b = budgetOf(row);
      budgetsVersion++;
      budgets.set(budgetKey(scope, targetId), b);
      return { before: previous ? view(scope, targetId, budgetOf(previous)) : null, after: view(scope, targetId, b) };
    },

    async removeBudget(scope: BudgetScope, targetId: string): Promise<BudgetView> {
      const before = await this.getBudget(scope, targetId);
      await asSystem(db, (tx) => tx.usageBudget.deleteMany({ where: { scope, targetId } }));
      budgetsVersion++;
      budgets.delete(budgetKey(scope, targetId));
      return before;
    },
  };
}

export type UsageService = ReturnType<typeof createUsageService>;
