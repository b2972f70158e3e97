import { atLeast, ROLE_RANK, type WorkspaceRole } from '../contracts/workspace.contract.ts';
import { asSystem, asUser, type Db, type Tx, type Workspace, type WorkspaceMember } from '../db.ts';
import { ConflictError, ForbiddenError, GoneError, NotFoundError, ValidationError } from '../errors.ts';
import type { AuditService } from './audit.service.ts';
import type { FleetSettingsService } from './fleet-settings.service.ts';

// Workspaces and their members. Every read and write runs as the caller
// (row-level security is the second wall); the role rules are checked here,
// and every membership change runs under a per-workspace lock, so that the
// "last owner" check and the change it guards are one step however many
// requests race.

export interface WorkspaceAccess {
  workspace: Workspace;
  role: WorkspaceRole;
  personal: boolean;
}

/** Personal workspaces' slugs (`u-` + 20 hex digits) are made by Hangar, never by hand. */
const PERSONAL_SLUG = /^u-[0-9a-f]{20}$/;

export function workspaceView(w: Workspace, role: WorkspaceRole) {
  return {
    id: w.id,
    slug: w.slug,
    name: w.name,
    personal: w.personalOwnerId !== null,
    role,
    archivedAt: w.archivedAt?.toISOString() ?? null,
    createdAt: w.createdAt.toISOString(),
  };
}

type MemberRow = WorkspaceMember & { user: { email: string | null; displayName: string } };

export function memberView(m: MemberRow) {
  return {
    userId: m.userId,
    email: m.user.email,
    displayName: m.user.displayName,
    role: m.role as WorkspaceRole,
    joinedAt: m.joinedAt.toISOString(),
    invitedById: m.invitedById,
    /** The workspace agent has confirmed this member in this role (memberProvisioning). */
    provisioned: m.provisionedRole === m.role,
  };
}

/** Serialises membership changes of one workspace (transaction-scoped, released at commit). */
export async function lockWorkspace(tx: Tx, workspaceId: string): Promise<void> {
  await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtextextended(${`workspace-members:${workspaceId}`}, 0))`;
}

async function assertAnotherOwner(tx: Tx, workspaceId: string, exceptUserId: string): Promise<void> {
  const others = await tx.workspaceMember.count({ where: { workspaceId, role: 'owner', userId: { not: exceptUserId } } });
  if (others === 0) throw new ConflictError('A workspace keeps at least one owner: make someone else owner first', 'last_owner');
}

export function createWorkspaceService({ db, fleet, audit }: { db: Db; fleet: FleetSettingsService; audit: AuditService }) {
  const memberWithUser = { user: { select: { email: true, displayName: true } } } as const;

  /**
   * The caller's membership of `slug`, with at least role `need`. Not a member:
   * 404 (existence is never revealed). Archived: 410, except a read by an owner.
   */
  async function access(userId: string, slug: string, need: WorkspaceRole = 'viewer', opts: { archivedRead?: boolean } = {}): Promise<WorkspaceAccess> {
    const m = await asUser(db, userId, (tx) => tx.workspaceMember.findFirst({ where: { userId, workspace: { slug } }, include: { workspace: true } }));
    if (!m) throw new NotFoundError('Workspace');
    const role = m.role as WorkspaceRole;
    if (m.workspace.archivedAt && !(opts.archivedRead && role === 'owner')) {
      throw new GoneError('This workspace is archived', 'workspace_archived');
    }
    if (!atLeast(role, need)) {
      throw new ForbiddenError(`This needs the ${need} role in the workspace; you are ${role}`, 'workspace_role_required');
    }
    return { workspace: m.workspace, role, personal: m.workspace.personalOwnerId !== null };
  }

  /** The caller's own role in a workspace by id (the chat proxy's check); null when not a member. */
  async function roleIn(userId: string, workspaceId: string): Promise<{ role: WorkspaceRole; archived: boolean } | null> {
    const m = await asUser(db, userId, (tx) => tx.workspaceMember.findUnique({
      where: { workspaceId_userId: { workspaceId, userId } },
      select: { role: true, workspace: { select: { archivedAt: true } } },
    }));
    return m ? { role: m.role as WorkspaceRole, archived: m.workspace.archivedAt !== null } : null;
  }

  /** Runs a membership change as the actor, under the workspace's lock, re-reading the actor's role inside it. */
  function change<T>(actorId: string, workspaceId: string, fn: (tx: Tx, actor: WorkspaceMember) => Promise<T>): Promise<T> {
    return asUser(db, actorId, async (tx) => {
      await lockWorkspace(tx, workspaceId);
      const actor = await tx.workspaceMember.findUnique({ where: { workspaceId_userId: { workspaceId, userId: actorId } } });
      if (!actor) throw new NotFoundError('Workspace');
      return fn(tx, actor);
    });
  }

  return {
    access,
    roleIn,

    async create(userId: string, input: { slug: string; name: string }) {
      if (PERSONAL_SLUG.test(input.slug)) {
        throw new ValidationError('Slugs of the form u-<20 hex digits> are kept for personal workspaces', { field: 'slug' }, 'slug_reserved');
      }
      let ws: Workspace;
      try {
        // Declared system work: until the owner row exists there is no member to be.
        ws = await asSystem(db, (tx) => tx.workspace.create({
          data: { slug: input.slug, name: input.name, members: { create: { userId, role: 'owner' } } },
        }));
      } catch (err) {
        if ((err as { code?: string }).code === 'P2002') throw new ConflictError(`The slug "${input.slug}" is taken`, 'slug_taken');
        throw err;
      }
      await audit.record({ actorId: userId, workspaceId: ws.id, action: 'workspace.create', target: `workspace:${ws.id}`, after: { slug: ws.slug, name: ws.name } });
      return workspaceView(ws, 'owner');
    },

    /** The caller's workspaces, their personal one (made on first need) included; archived ones for their owners only. */
    async list(userId: string) {
      await fleet.personalWorkspaceId(userId);
      const rows = await asUser(db, userId, (tx) => tx.workspaceMember.findMany({
        where: { userId },
        include: { workspace: true },
        orderBy: [{ joinedAt: 'asc' }, { workspaceId: 'asc' }],
      }));
      return rows
        .filter((m) => !m.workspace.archivedAt || m.role === 'owner')
        .sort((a, b) => Number(b.workspace.personalOwnerId !== null) - Number(a.workspace.personalOwnerId !== null))
        .map((m) => workspaceView(m.workspace, m.role as WorkspaceRole));
    },

    async get(userId: string, slug: string) {
      const a = await access(userId, slug, 'viewer', { archivedRead: true });
      const memberCount = await asUser(db, userId, (tx) => tx.workspaceMember.count({ where: { workspaceId: a.workspace.id } }));
      return { ...workspaceView(a.workspace, a.role), memberCount };
    },

    async rename(userId: string, slug: string, name: string) {
      const a = await access(userId, slug, 'admin');
      const after = await asUser(db, userId, (tx) => tx.workspace.update({ where: { id: a.workspace.id }, data: { name } }));
      await audit.record({ actorId: userId, workspaceId: after.id, action: 'workspace.rename', target: `workspace:${after.id}`, before: { name: a.workspace.name }, after: { name } });
      return workspaceView(after, a.role);
    },

    /** Owners only; pending invitations are revoked with it (the caller stops the agent). */
    async archive(userId: string, slug: string) {
      const a = await access(userId, slug, 'owner');
      if (a.personal) throw new ConflictError('A personal workspace cannot be archived', 'personal_workspace');
      const after = await asUser(db, userId, async (tx) => {
        const now = new Date();
        await tx.invite.updateMany({ where: { workspaceId: a.workspace.id, acceptedAt: null, revokedAt: null }, data: { revokedAt: now } });
        return tx.workspace.update({ where: { id: a.workspace.id }, data: { archivedAt: now } });
      });
      await audit.record({ actorId: userId, workspaceId: after.id, action: 'workspace.archive', target: `workspace:${after.id}` });
      return workspaceView(after, a.role);
    },

    async members(userId: string, slug: string) {
      const a = await access(userId, slug);
      const rows = await asUser(db, userId, (tx) => tx.workspaceMember.findMany({
        where: { workspaceId: a.workspace.id },
        include: memberWithUser,
        orderBy: [{ joinedAt: 'asc' }, { userId: 'asc' }],
      }));
      return rows.map(memberView);
    },

    /**
     * Owners change anyone; admins change members and viewers (never an owner,
     * never to owner, never themselves upwards). The last owner stays owner.
     * Only the role changes: joinedAt is the day they joined.
     */
    async setRole(actorId: string, slug: string, targetId: string, role: WorkspaceRole) {
      const a = await access(actorId, slug, 'admin');
      const { before, after } = await change(actorId, a.workspace.id, async (tx, actor) => {
        if (!atLeast(actor.role as WorkspaceRole, 'admin')) throw new ForbiddenError('Only owners and admins change roles', 'workspace_role_required');
        const target = await tx.workspaceMember.findUnique({ where: { workspaceId_userId: { workspaceId: a.workspace.id, userId: targetId } }, include: memberWithUser });
        if (!target) throw new NotFoundError('Member');
        if (targetId === actorId && ROLE_RANK[role] > ROLE_RANK[actor.role as WorkspaceRole]) {
          throw new ForbiddenError('You cannot promote yourself', 'cannot_promote_self');
        }
        if ((role === 'owner' || target.role === 'owner') && actor.role !== 'owner') {
          throw new ForbiddenError('Only an owner grants the owner role or changes an owner', 'owner_required');
        }
        if (target.role === 'owner' && role !== 'owner') await assertAnotherOwner(tx, a.workspace.id, targetId);
        if (target.role === role) return { before: target, after: target };
        const updated = await tx.workspaceMember.update({
          where: { workspaceId_userId: { workspaceId: a.workspace.id, userId: targetId } },
          data: { role },
          include: memberWithUser,
        });
        return { before: target, after: updated };
      });
      if (before.role !== after.role) {
        await audit.record({ actorId, workspaceId: a.workspace.id, action: 'workspace.member.role', target: `user:${targetId}`, before: { role: before.role }, after: { role: after.role } });
      }
      return { member: memberView(after), workspaceId: a.workspace.id, changed: before.role !== after.role };
    },

    /** Anyone may leave; owners and admins remove others (admins never an owner). The last owner stays. */
    async removeMember(actorId: string, slug: string, targetId: string) {
      const a = await access(actorId, slug);
      if (a.personal) throw new ConflictError('A personal workspace has exactly its owner', 'personal_workspace');
      const removed = await change(actorId, a.workspace.id, async (tx, actor) => {
        const self = actorId === targetId;
        if (!self && !atLeast(actor.role as WorkspaceRole, 'admin')) throw new ForbiddenError('Only owners and admins remove members', 'workspace_role_required');
        const target = await tx.workspaceMember.findUnique({ where: { workspaceId_userId: { workspaceId: a.workspace.id, userId: targetId } } });
        if (!target) throw new NotFoundError('Member');
        if (!self && target.role === 'owner' && actor.role !== 'owner') throw new ForbiddenError('Only an owner removes an owner', 'owner_required');
        if (target.role === 'owner') await assertAnotherOwner(tx, a.workspace.id, targetId);
        await tx.workspaceMember.delete({ where: { workspaceId_userId: { workspaceId: a.workspace.id, userId: targetId } } });
        return target;
      });
      await audit.record({ actorId, workspaceId: a.workspace.id, action: actorId === targetId ? 'workspace.member.leave' : 'workspace.member.remove', target: `user:${targetId}`, before: { role: removed.role } });
      return { workspaceId: a.workspace.id };
    },

    /** Everything member provisioning needs to know, read as system work (the worker has no user). */
    async syncSubject(workspaceId: string) {
      return asSystem(db, async (tx) => {
        const ws = await tx.workspace.findUnique({ where: { id: workspaceId }, select: { archivedAt: true } });
        const rows = await tx.workspaceMember.findMany({ where: { workspaceId, user: { status: 'active' } }, include: memberWithUser, orderBy: { userId: 'asc' } });
        return {
          exists: ws !== null,
          archived: ws?.archivedAt != null,
          members: rows.map((m) => ({ userId: m.userId, email: m.user.email, displayName: m.user.displayName, role: m.role as WorkspaceRole })),
        };
      });
    },

    /** Marks the members whose role the agent now has as provisioned. */
    async recordProvisioned(workspaceId: string, confirmed: Array<{ userId: string; role: WorkspaceRole }>): Promise<number> {
      if (confirmed.length === 0) return 0;
      return asSystem(db, async (tx) => {
        let n = 0;
        const at = new Date();
        for (const c of confirmed) {
          const r = await tx.workspaceMember.updateMany({ where: { workspaceId, userId: c.userId, role: c.role }, data: { provisionedRole: c.role, provisionedAt: at } });
          n += r.count;
        }
        return n;
      });
    },

    /** Every workspace whose agent is running (the drift check's list). */
    async withRunningAgents(): Promise<string[]> {
      const rows = await asSystem(db, (tx) => tx.agent.findMany({ where: { ownerKind: 'workspace', status: 'running' }, select: { ownerId: true } }));
      return [...new Set(rows.map((r) => r.ownerId))];
    },

    /** Admins: every workspace (personal ones too: each is a tenant) with its member count and update config, never its members' data. */
    async listForAdmin(page: number, limit: number) {
      return asSystem(db, async (tx) => {
        const [total, rows] = [
          await tx.workspace.count(),
          await tx.workspace.findMany({
            orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
            skip: (page - 1) * limit,
            take: limit,
            include: { _count: { select: { members: true } }, updateConfig: true },
          }),
        ];
        return { total, rows };
      });
    },

    /** A workspace by slug for an instance admin (declared system work). */
    async bySlugForAdmin(slug: string): Promise<Workspace> {
      const ws = await asSystem(db, (tx) => tx.workspace.findUnique({ where: { slug } }));
      if (!ws) throw new NotFoundError('Workspace');
      return ws;
    },
  };
}

export type WorkspaceService = ReturnType<typeof createWorkspaceService>;
