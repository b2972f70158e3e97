import { publicBase, type HangarConfig } from '../config.ts';
import type { WorkspaceRole } from '../contracts/workspace.contract.ts';
import { randomToken, sha256 } from '../crypto.ts';
import { asSystem, asUser, type Db, type Invite } from '../db.ts';
import { ConflictError, ForbiddenError, GoneError, NotFoundError } from '../errors.ts';
import type { AuditService } from './audit.service.ts';
import type { NotificationService } from './notifications.service.ts';
import { lockWorkspace, type WorkspaceService } from './workspaces.service.ts';

// Invitations by email. The link's token is shown once (to the inviter, and
// in the mail); only its sha256 and the email's are stored. A signed-in user
// whose email matches accepts it, once, before it expires.

const emailHash = (email: string) => sha256(`invite-email:${email.trim().toLowerCase()}`);

/** "a•••@example.com": enough for the workspace's admins to recognise whom they invited. */
export function emailHint(email: string): string {
  const [local, domain] = email.trim().toLowerCase().split('@');
  return `${(local ?? '').slice(0, 1)}•••@${domain ?? ''}`;
}

function inviteView(i: Invite) {
  return { id: i.id, emailHint: i.emailHint, role: i.role as WorkspaceRole, expiresAt: i.expiresAt.toISOString(), createdAt: i.createdAt.toISOString(), invitedById: i.invitedById };
}

export function createInviteService(deps: {
  db: Db;
  config: Pick<HangarConfig, 'inviteTtlHours' | 'publicUrl' | 'port'>;
  workspaces: WorkspaceService;
  notifications: Pick<NotificationService, 'send'>;
  audit: AuditService;
  log?: (m: string) => void;
}) {
  const { db, config, workspaces, notifications, audit } = deps;
  const log = deps.log ?? console.warn;
  const pending = (now = new Date()) => ({ acceptedAt: null, revokedAt: null, expiresAt: { gt: now } });

  return {
    /** Owners and admins invite (only owners invite owners); an earlier pending invite of the same address is replaced. */
    async create(actor: { id: string; displayName: string }, slug: string, input: { email: string; role: WorkspaceRole }) {
      const a = await workspaces.access(actor.id, slug, 'admin');
      if (a.personal) throw new ConflictError('A personal workspace has exactly its owner; make a shared workspace to invite people', 'personal_workspace');
      if (input.role === 'owner' && a.role !== 'owner') throw new ForbiddenError('Only an owner invites owners', 'owner_required');
      const email = input.email.trim().toLowerCase();
      const existing = await asSystem(db, (tx) => tx.workspaceMember.findFirst({ where: { workspaceId: a.workspace.id, user: { email } }, select: { userId: true } }));
      if (existing) throw new ConflictError('That address belongs to a member already', 'already_member');
      const token = randomToken(32);
      const expiresAt = new Date(Date.now() + config.inviteTtlHours * 3600_000);
      const invite = await asUser(db, actor.id, async (tx) => {
        await tx.invite.updateMany({ where: { workspaceId: a.workspace.id, emailHash: emailHash(email), ...pending() }, data: { revokedAt: new Date() } });
        return tx.invite.create({
          data: { workspaceId: a.workspace.id, emailHash: emailHash(email), emailHint: emailHint(email), tokenHash: sha256(token), role: input.role, invitedById: actor.id, expiresAt },
        });
      });
      await audit.record({ actorId: actor.id, workspaceId: a.workspace.id, action: 'workspace.invite', target: `invite:${invite.id}`, after: { emailHint: invite.emailHint, role: invite.role } });
      const link = `${publicBase(config)}/#/invite/${token}`;
      let mailed = false;
      try {
        mailed = (await notifications.send(email, {
          subject: `${actor.displayName} invited you to ${a.workspace.name} on Hangar`,
          text: [
            `${actor.displayName} invited you to the workspace "${a.workspace.name}" on Hangar, as ${input.role}.`,
            '',
            `Sign in to Hangar as ${email}, then open this link to join:`,
            link,
            '',
            `The link works once and expires ${expiresAt.toUTCString()}. If you did not expect it, ignore this mail.`,
          ].join('\n'),
        })) === 'sent';
      } catch (err) {
        // The invitation stands: the inviter has the link in the answer and can pass it on.
        log(`invite mail to ${emailHint(email)} failed: ${(err as Error).message}`);
      }
      return { ...inviteView(invite), token, mailed };
    },

    async list(actorId: string, slug: string) {
      const a = await workspaces.access(actorId, slug, 'admin');
      const rows = await asUser(db, actorId, (tx) => tx.invite.findMany({ where: { workspaceId: a.workspace.id, ...pending() }, orderBy: { createdAt: 'asc' } }));
      return rows.map(inviteView);
    },

    async revoke(actorId: string, slug: string, inviteId: string): Promise<void> {
      const a = await workspaces.access(actorId, slug, 'admin');
      const { count } = await asUser(db, actorId, (tx) => tx.invite.updateMany({ where: { id: inviteId, workspaceId: a.workspace.id, acceptedAt: null, revokedAt: null }, data: { revokedAt: new Date() } }));
      if (count === 0) throw new NotFoundError('Invite');
      await audit.record({ actorId, workspaceId: a.workspace.id, action: 'workspace.invite.revoke', target: `invite:${inviteId}` });
    },

    /** Invitations waiting for the caller's address (their workspace's name; never the token). */
    async mine(user: { id: string; email: string | null }) {
      if (!user.email) return [];
      // The invitee is no member yet: looked up by their address's hash as declared system work.
      const rows = await asSystem(db, (tx) => tx.invite.findMany({
        where: { emailHash: emailHash(user.email!), ...pending(), workspace: { archivedAt: null } },
        include: { workspace: { select: { slug: true, name: true } } },
        orderBy: { createdAt: 'asc' },
      }));
      return rows.map((i) => ({ id: i.id, workspace: { slug: i.workspace.slug, name: i.workspace.name }, role: i.role as WorkspaceRole, expiresAt: i.expiresAt.toISOString() }));
    },

    /**
     * Spends the token and makes the membership, in one transaction under the
     * workspace's lock: a second accept (or a racing twin) finds it used.
     */
    async accept(user: { id: string; email: string | null }, token: string) {
      const result = await asSystem(db, async (tx) => {
        const invite = await tx.invite.findUnique({ where: { tokenHash: sha256(token) }, include: { workspace: true } });
        if (!invite) throw new NotFoundError('Invite');
        await lockWorkspace(tx, invite.workspaceId);
        const fresh = await tx.invite.findUniqueOrThrow({ where: { id: invite.id } });
        if (fresh.revokedAt) throw new GoneError('This invitation was revoked', 'invite_revoked');
        if (fresh.acceptedAt) throw new GoneError('This invitation was used already', 'invite_used');
        if (fresh.expiresAt <= new Date()) throw new GoneError('This invitation has expired; ask for a new one', 'invite_expired');
        if (invite.workspace.archivedAt) throw new GoneError('This workspace is archived', 'workspace_archived');
        if (!user.email || emailHash(user.email) !== fresh.emailHash) {
          throw new ForbiddenError('This invitation is for another address: sign in as the person it was sent to', 'invite_email_mismatch');
        }
        const already = await tx.workspaceMember.findUnique({ where: { workspaceId_userId: { workspaceId: invite.workspaceId, userId: user.id } } });
        if (already) throw new ConflictError('You are a member of this workspace already', 'already_member');
        await tx.invite.update({ where: { id: invite.id }, data: { acceptedAt: new Date(), acceptedById: user.id } });
        const member = await tx.workspaceMember.create({ data: { workspaceId: invite.workspaceId, userId: user.id, role: fresh.role, invitedById: fresh.invitedById } });
        return { invite: fresh, workspace: invite.workspace, member };
      });
      await audit.record({ actorId: user.id, workspaceId: result.workspace.id, action: 'workspace.invite.accept', target: `invite:${result.invite.id}`, after: { role: result.member.role } });
      return {
        workspace: { id: result.workspace.id, slug: result.workspace.slug, name: result.workspace.name },
        userId: user.id,
        role: result.member.role as WorkspaceRole,
        joinedAt: result.member.joinedAt.toISOString(),
      };
    },
  };
}

export type InviteService = ReturnType<typeof createInviteService>;
