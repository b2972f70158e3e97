import type { Prisma } from '../generated/prisma/client.ts';
import {
  countStatuses,
  type RolloutInput,
  type RolloutProgress,
  type RolloutStatus,
  type RolloutTarget,
  type UpdateMode,
} from '../contracts/rollout.contract.ts';
import { asSystem, type Agent, type Db } from '../db.ts';
import { NotFoundError } from '../errors.ts';
import type { FleetSettingsService } from './fleet-settings.service.ts';

// Rollouts as records: who is targeted, what each run reported, the fleet
// event trail, and the "update available" offer a manual-mode agent carries.

const TERMINAL: RolloutStatus[] = ['completed', 'aborted', 'failed'];

export function createRolloutService({ db, fleet }: { db: Db; fleet: FleetSettingsService }) {
  const sys = <T>(fn: Parameters<typeof asSystem<T>>[1]) => asSystem(db, fn);

  return {
    /** The agents a rollout would move, with the update config that governs each. */
    async targets(input: Pick<RolloutInput, 'image' | 'toDigest' | 'agentIds'>): Promise<{ targets: RolloutTarget[]; skipped: { agentId: string; reason: string }[] }> {
      const rows = await sys((tx) => tx.agent.findMany({
        where: input.agentIds ? { id: { in: input.agentIds } } : { image: input.image },
        orderBy: { createdAt: 'asc' },
      }));
      const settings = await fleet.get();
      const skipped: { agentId: string; reason: string }[] = [];
      const targets: RolloutTarget[] = [];
      for (const a of rows) {
        if (a.image !== input.image) {
          skipped.push({ agentId: a.id, reason: `runs ${a.image}, not ${input.image}` });
          continue;
        }
        if (a.imageDigest === input.toDigest) continue;
        const workspaceId = a.ownerKind === 'user' ? await fleet.personalWorkspaceId(a.ownerId) : a.ownerKind === 'workspace' ? a.ownerId : null;
        const cfg = workspaceId ? await sys((tx) => tx.tenantUpdateConfig.findUnique({ where: { workspaceId } })) : null;
        targets.push({
          agentId: a.id,
          dockerHostId: a.dockerHostId,
          ownerKind: a.ownerKind,
          ownerId: a.ownerId,
          workspaceId,
          // System agents belong to the fleet: they follow the fleet's settings alone.
          // An instance admin's override wins over the workspace's own choice.
          mode: ((cfg?.modeOverride ?? cfg?.mode) as UpdateMode | undefined) ?? 'auto',
          preferredHourUtc: cfg?.preferredHourUtc ?? (a.ownerKind === 'system' ? null : settings.defaultPreferredHourUtc),
          alwaysOn: a.ownerKind === 'system',
        });
      }
      for (const id of input.agentIds ?? []) {
        if (!rows.some((r) => r.id === id)) skipped.push({ agentId: id, reason: 'no such agent' });
      }
      return { targets, skipped };
    },

    /**
     * The update config that governs each agent, as targets() reads it (the
     * fleet view shows it per tenant); read-only: a user without a personal
     * workspace yet has the defaults.
     */
    async updateConfigsFor(agents: Array<Pick<Agent, 'id' | 'ownerKind' | 'ownerId'>>): Promise<Map<string, { mode: UpdateMode; preferredHourUtc: number | null }>> {
      const settings = await fleet.get();
      const userIds = agents.filter((a) => a.ownerKind === 'user').map((a) => a.ownerId);
      return sys(async (tx) => {
        const personal = await tx.workspace.findMany({ where: { personalOwnerId: { in: userIds } }, select: { id: true, personalOwnerId: true } });
        const wsOfUser = new Map(personal.map((w) => [w.personalOwnerId!, w.id]));
        const wsOf = (a: Pick<Agent, 'ownerKind' | 'ownerId'>) => (a.ownerKind === 'user' ? (wsOfUser.get(a.ownerId) ?? null) : a.ownerKind === 'workspace' ? a.ownerId : null);
        const ids = [...new Set(agents.map(wsOf).filter((w): w is string => w !== null))];
        const cfgs = new Map((await tx.tenantUpdateConfig.findMany({ where: { workspaceId: { in: ids } } })).map((c) => [c.workspaceId, c]));
        return new Map(agents.map((a) => {
          const ws = wsOf(a);
          const cfg = ws ? cfgs.get(ws) : undefined;
          return [a.id, {
            mode: (cfg?.mode as UpdateMode | undefined) ?? 'auto',
            preferredHourUtc: cfg?.preferredHourUtc ?? (a.ownerKind === 'system' ? null : settings.defaultPreferredHourUtc),
          }];
        }));
      });
    },

    /** Idempotent by id: the API and the workflow's first step may both write it. */
    async open(r: { id: string; workflowId: string; trigger: string; image: string; toDigest: string; fromDigest?: string | null; strategy: object; changelog?: string | null; startedById?: string | null }) {
      return db.rollout.upsert({
        where: { id: r.id },
        create: {
          id: r.id,
          workflowId: r.workflowId,
          trigger: r.trigger,
          image: r.image,
          toDigest: r.toDigest,
          fromDigest: r.fromDigest ?? null,
          strategy: r.strategy,
          changelog: r.changelog ?? null,
          startedById: r.startedById ?? null,
        },
        update: { changelog: r.changelog ?? undefined, fromDigest: r.fromDigest ?? undefined },
      });
    },

    async saveProgress(p: RolloutProgress, fromDigest?: string | null): Promise<void> {
      await db.rollout.update({
        where: { id: p.id },
        data: {
          status: p.status,
          counts: p.counts,
          progress: { waves: p.waves, agents: p.agents, reason: p.reason ?? null } as unknown as Prisma.InputJsonValue,
          error: p.status === 'aborted' || p.status === 'failed' ? (p.reason ?? null) : null,
          ...(fromDigest ? { fromDigest } : {}),
          finishedAt: TERMINAL.includes(p.status) ? new Date() : null,
        },
      });
    },

    async list(page: number, limit: number) {
      const [total, rows] = await Promise.all([
        db.rollout.count(),
        db.rollout.findMany({ orderBy: { createdAt: 'desc' }, skip: (page - 1) * limit, take: limit }),
      ]);
      return { total, rows: rows.map(toView) };
    },

    async get(id: string) {
      const row = await db.rollout.findUnique({ where: { id } }).catch(() => null);
      if (!row) throw new NotFoundError('Rollout');
      return toView(row);
    },

    /** Rollouts still in flight with their per-status counts (metrics). */
    inFlight(limit: number) {
      return db.rollout.findMany({ where: { status: { in: ['pending', 'running', 'paused'] } }, select: { id: true, image: true, counts: true }, take: limit });
    },

    async countByStatus(): Promise<Record<string, number>> {
      const rows = await db.rollout.groupBy({ by: ['status'], _count: { _all: true } });
      return Object.fromEntries(rows.map((r) => [r.status, r._count._all]));
    },

    /** Workflow ids of the rollouts still in flight. */
    async openWorkflowIds(): Promise<string[]> {
      const rows = await db.rollout.findMany({ where: { status: { in: ['pending', 'running', 'paused'] } }, select: { workflowId: true } });
      return rows.map((r) => r.workflowId);
    },

    /** The newest rollout row of a workflow id (an id may be run again after it ended). */
    async latestFor(workflowId: string) {
      return db.rollout.findFirst({ where: { workflowId }, orderBy: { createdAt: 'desc' } });
    },

    async recordEvent(e: { type: string; agentId?: string | null; rolloutId?: string | null; payload?: object }): Promise<void> {
      await db.fleetEvent.create({ data: { type: e.type, agentId: e.agentId ?? null, rolloutId: e.rolloutId ?? null, payload: e.payload ?? {} } });
    },

    /** Many events in one statement. */
    async recordEvents(events: Array<{ type: string; agentId?: string | null; rolloutId?: string | null; payload?: object }>): Promise<void> {
      if (events.length === 0) return;
      await db.fleetEvent.createMany({ data: events.map((e) => ({ type: e.type, agentId: e.agentId ?? null, rolloutId: e.rolloutId ?? null, payload: e.payload ?? {} })) });
    },

    /** Fleet events of one type since a time (metrics). */
    countEventsSince(type: string, since: Date): Promise<number> {
      return db.fleetEvent.count({ where: { type, at: { gte: since } } });
    },

    async listEvents(q: { page: number; limit: number; rolloutId?: string; agentId?: string; type?: string }) {
      const where = { rolloutId: q.rolloutId, agentId: q.agentId, type: q.type };
      const [total, rows] = await Promise.all([
        db.fleetEvent.count({ where }),
        db.fleetEvent.findMany({ where, orderBy: [{ at: 'desc' }, { id: 'asc' }], skip: (q.page - 1) * q.limit, take: q.limit }),
      ]);
      return {
        total,
        rows: rows.map((e) => ({ id: e.id, type: e.type, agentId: e.agentId, rolloutId: e.rolloutId, payload: e.payload as Record<string, unknown>, at: e.at.toISOString() })),
      };
    },

    /** Manual mode: the agent is told, not touched. */
    async offerUpdate(agentIds: string[], toDigest: string, rolloutId: string): Promise<void> {
      await sys((tx) => tx.agent.updateMany({ where: { id: { in: agentIds } }, data: { updateAvailable: true, updateDigest: toDigest, updateRolloutId: rolloutId } }));
    },

    /** What GET /api/me/agent/update answers; the changelog comes from the offering rollout. */
    async offerFor(agent: { updateAvailable: boolean; updateDigest: string | null; updateRolloutId: string | null; image: string }) {
      if (!agent.updateAvailable || !agent.updateDigest) return { available: false, toDigest: null, changelog: null, image: agent.image };
      const r = agent.updateRolloutId ? await db.rollout.findUnique({ where: { id: agent.updateRolloutId } }) : null;
      return { available: true, toDigest: agent.updateDigest, changelog: r?.changelog ?? null, image: agent.image };
    },
  };
}

type RolloutRow = Awaited<ReturnType<Db['rollout']['findUniqueOrThrow']>>;

function toView(r: RolloutRow) {
  const progress = (r.progress ?? {}) as Partial<Pick<RolloutProgress, 'waves' | 'agents' | 'reason'>>;
  const agents = progress.agents ?? [];
  return {
    id: r.id,
    workflowId: r.workflowId,
    trigger: r.trigger,
    image: r.image,
    fromDigest: r.fromDigest,
    toDigest: r.toDigest,
    strategy: r.strategy as Record<string, unknown>,
    status: r.status as RolloutStatus,
    reason: progress.reason ?? r.error ?? null,
    changelog: r.changelog,
    waves: progress.waves ?? [],
    agents,
    counts: Object.keys(r.counts as object).length ? (r.counts as Record<string, number>) : countStatuses(agents),
    startedById: r.startedById,
    createdAt: r.createdAt.toISOString(),
    finishedAt: r.finishedAt?.toISOString() ?? null,
  };
}

export type RolloutService = ReturnType<typeof createRolloutService>;
export type RolloutView = ReturnType<typeof toView>;
