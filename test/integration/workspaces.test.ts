import { afterAll, describe, expect, it } from 'vitest';
import { asSystem } from '../../core/db.ts';
import { useScene } from '../support/hangar.harness.ts';
import { startSmtpSink } from '../support/smtp-sink.ts';
import { invite, join, makeWorkspace, person, type Person } from '../support/teams.ts';

// Workspaces on the real stack: create/read/rename/archive, invitations by
// mail, and the membership rules of the IronClaw review, one test each.

const smtp = await startSmtpSink();

describe('workspaces, members and invitations', () => {
  const scene = useScene({ overrides: { SMTP_URL: smtp.url } });
  afterAll(() => smtp.close());
  const code = async (res: Response) => ((await res.json()) as { error?: { code?: string } }).error?.code;
  const members = async (who: Person, slug: string) =>
    (await (await who.api(`/api/workspaces/${slug}/members`)).json()) as Array<{ userId: string; role: string; joinedAt: string; email: string; displayName: string }>;

  it('creates a workspace with its creator as owner, validates slugs, and keeps everyone a personal workspace', async () => {
    const alice = await person(scene.h, 'Alice');
    for (const slug of ['ab', 'Upper-case', '-leading', 'trailing-', 'has_underscore', 'x'.repeat(65)]) {
      expect((await alice.api('/api/workspaces', { body: { slug, name: 'Bad' } })).status, slug).toBe(400);
    }
    const reserved = await alice.api('/api/workspaces', { body: { slug: `u-${'0'.repeat(20)}`, name: 'Mine now' } });
    expect([reserved.status, await code(reserved)]).toEqual([400, 'slug_reserved']);
    const ws = await makeWorkspace(alice);
    const again = await alice.api('/api/workspaces', { body: { slug: ws.slug, name: 'Twice' } });
    expect([again.status, await code(again)]).toEqual([409, 'slug_taken']);

    const list = (await (await alice.api('/api/workspaces')).json()) as Array<{ slug: string; personal: boolean; role: string }>;
    expect(list.filter((w) => w.personal)).toHaveLength(1);
    expect(list.find((w) => w.slug === ws.slug)).toMatchObject({ personal: false, role: 'owner' });
    expect(await members(alice, ws.slug)).toEqual([expect.objectContaining({ userId: alice.id, role: 'owner', email: alice.email })]);
    const got = await alice.api(`/api/workspaces/${ws.slug}`);
    expect(await got.json()).toMatchObject({ slug: ws.slug, role: 'owner', memberCount: 1, archivedAt: null });

    // Someone else: the workspace does not exist for them.
    const bob = await person(scene.h, 'Bob');
    for (const path of [`/api/workspaces/${ws.slug}`, `/api/workspaces/${ws.slug}/members`, `/api/workspaces/${ws.slug}/invites`, `/api/workspaces/${ws.slug}/agent`]) {
      expect((await bob.api(path)).status, path).toBe(404);
    }
    expect((await bob.api(`/api/workspaces/${ws.slug}`, { method: 'PATCH', body: { name: 'Mine' } })).status).toBe(404);
    // A personal workspace takes no invitations and cannot be archived.
    const personal = list.find((w) => w.personal)!;
    expect(await code(await alice.api(`/api/workspaces/${personal.slug}/invites`, { body: { email: bob.email, role: 'member' } }))).toBe('personal_workspace');
    expect(await code(await alice.api(`/api/workspaces/${personal.slug}/archive`, { method: 'POST' }))).toBe('personal_workspace');
  });

  it('invites by mail with a one-time, expiring link that only the addressee can accept', async () => {
    const [owner, carol, mallory] = await Promise.all([person(scene.h, 'Owner'), person(scene.h, 'Carol'), person(scene.h, 'Mallory')]);
    const ws = await makeWorkspace(owner);
    const sent = await invite(owner, ws.slug, carol.email.toUpperCase(), 'member');
    // The mail carries the link; the database holds only hashes.
    const mail = await (async () => {
      for (let i = 0; i < 100 && smtp.to(carol.email).length === 0; i++) await new Promise((r) => setTimeout(r, 100));
      return smtp.to(carol.email).at(-1);
    })();
    expect(mail?.text).toContain(`/#/invite/${sent.token}`);
    expect(mail?.text).toContain(`"Team ${ws.slug}"`);
    const row = await asSystem(scene.h.core.db, (tx) => tx.invite.findUniqueOrThrow({ where: { id: sent.id } }));
    expect(JSON.stringify(row)).not.toContain(sent.token);
    expect(JSON.stringify(row)).not.toContain(carol.email);
    expect(row.emailHint).toBe(`${carol.email[0]}•••@teams.example.test`);

    // Carol sees it waiting; the admins see it pending, the address masked.
    expect(await (await carol.api('/api/me/invites')).json()).toEqual([expect.objectContaining({ id: sent.id, role: 'member', workspace: { slug: ws.slug, name: `Team ${ws.slug}` } })]);
    expect((await (await owner.api(`/api/workspaces/${ws.slug}/invites`)).json()).map((i: { id: string }) => i.id)).toEqual([sent.id]);

    // Someone else holding the link cannot use it.
    const stolen = await mallory.api('/api/invites/accept', { body: { token: sent.token } });
    expect([stolen.status, await code(stolen)]).toEqual([403, 'invite_email_mismatch']);
    const accepted = await carol.api('/api/invites/accept', { body: { token: sent.token } });
    expect(accepted.status).toBe(200);
    expect(await accepted.json()).toMatchObject({ workspace: { id: ws.id, slug: ws.slug }, userId: carol.id, role: 'member' });
    const twice = await carol.api('/api/invites/accept', { body: { token: sent.token } });
    expect([twice.status, await code(twice)]).toEqual([410, 'invite_used']);
    expect((await mallory.api('/api/invites/accept', { body: { token: 'x'.repeat(43) } })).status).toBe(404);
    expect(await (await carol.api('/api/me/invites')).json()).toEqual([]);

    // Expired and revoked links are gone too.
    const late = await invite(owner, ws.slug, mallory.email, 'viewer');
    await asSystem(scene.h.core.db, (tx) => tx.invite.update({ where: { id: late.id }, data: { expiresAt: new Date(Date.now() - 1000) } }));
    const expired = await mallory.api('/api/invites/accept', { body: { token: late.token } });
    expect([expired.status, await code(expired)]).toEqual([410, 'invite_expired']);
    const revokedInvite = await invite(owner, ws.slug, mallory.email, 'viewer');
    expect((await owner.api(`/api/workspaces/${ws.slug}/invites/${revokedInvite.id}`, { method: 'DELETE' })).status).toBe(204);
    const revoked = await mallory.api('/api/invites/accept', { body: { token: revokedInvite.token } });
    expect([revoked.status, await code(revoked)]).toEqual([410, 'invite_revoked']);

    // Members and viewers do not invite; an admin does not invite owners.
    expect((await carol.api(`/api/workspaces/${ws.slug}/invites`, { body: { email: 'x@example.test', role: 'member' } })).status).toBe(403);
    const dave = await person(scene.h, 'Dave');
    await join(owner, ws.slug, dave, 'admin');
    expect(await code(await dave.api(`/api/workspaces/${ws.slug}/invites`, { body: { email: 'y@example.test', role: 'owner' } }))).toBe('owner_required');
    expect(await code(await dave.api(`/api/workspaces/${ws.slug}/invites`, { body: { email: carol.email, role: 'member' } }))).toBe('already_member');
  });

  it('keeps the last owner: not demoted, not leaving, not removed — also when two requests race', async () => {
    const [ann, ben] = await Promise.all([person(scene.h, 'Ann'), person(scene.h, 'Ben')]);
    const ws = await makeWorkspace(ann);
    const demote = await ann.api(`/api/workspaces/${ws.slug}/members/${ann.id}`, { method: 'PUT', body: { role: 'admin' } });
    expect([demote.status, await code(demote)]).toEqual([409, 'last_owner']);
    const leave = await ann.api(`/api/workspaces/${ws.slug}/members/${ann.id}`, { method: 'DELETE' });
    expect([leave.status, await code(leave)]).toEqual([409, 'last_owner']);

    // Two owners each try to go at once: one may, the other is then the last owner.
    await join(ann, ws.slug, ben, 'owner');
    const both = await Promise.all([
      ann.api(`/api/workspaces/${ws.slug}/members/${ann.id}`, { method: 'DELETE' }),
      ben.api(`/api/workspaces/${ws.slug}/members/${ben.id}`, { method: 'DELETE' }),
    ]);
    expect(both.map((r) => r.status).sort()).toEqual([204, 409]);
    const left = await asSystem(scene.h.core.db, (tx) => tx.workspaceMember.findMany({ where: { workspaceId: ws.id } }));
    expect(left.map((m) => m.role)).toEqual(['owner']);

    // Two owners demoting each other at once: whoever goes second is no owner any more.
    const stayer = left[0]!.userId === ann.id ? ann : ben;
    const other = await person(scene.h, 'Cy');
    await join(stayer, ws.slug, other, 'owner');
    const crossed = await Promise.all([
      stayer.api(`/api/workspaces/${ws.slug}/members/${other.id}`, { method: 'PUT', body: { role: 'member' } }),
      other.api(`/api/workspaces/${ws.slug}/members/${stayer.id}`, { method: 'PUT', body: { role: 'member' } }),
    ]);
    expect(crossed.map((r) => r.status).sort()).toEqual([200, 403]);
    const owners = await asSystem(scene.h.core.db, (tx) => tx.workspaceMember.count({ where: { workspaceId: ws.id, role: 'owner' } }));
    expect(owners).toBe(1);
  });

  it('only an owner grants owner, an admin cannot promote themselves, and joinedAt survives a role change', async () => {
    const [owner, adam, mia] = await Promise.all([person(scene.h, 'Owner'), person(scene.h, 'Adam'), person(scene.h, 'Mia')]);
    const ws = await makeWorkspace(owner);
    await join(owner, ws.slug, adam, 'admin');
    await join(owner, ws.slug, mia, 'member');
    const joined = (await members(owner, ws.slug)).find((m) => m.userId === mia.id)!.joinedAt;

    const grant = await adam.api(`/api/workspaces/${ws.slug}/members/${mia.id}`, { method: 'PUT', body: { role: 'owner' } });
    expect([grant.status, await code(grant)]).toEqual([403, 'owner_required']);
    const self = await adam.api(`/api/workspaces/${ws.slug}/members/${adam.id}`, { method: 'PUT', body: { role: 'owner' } });
    expect([self.status, await code(self)]).toEqual([403, 'cannot_promote_self']);
    const touchOwner = await adam.api(`/api/workspaces/${ws.slug}/members/${owner.id}`, { method: 'PUT', body: { role: 'member' } });
    expect([touchOwner.status, await code(touchOwner)]).toEqual([403, 'owner_required']);
    expect(await code(await adam.api(`/api/workspaces/${ws.slug}/members/${owner.id}`, { method: 'DELETE' }))).toBe('owner_required');
    const byMember = await mia.api(`/api/workspaces/${ws.slug}/members/${mia.id}`, { method: 'PUT', body: { role: 'admin' } });
    expect(byMember.status).toBe(403);
    expect((await members(owner, ws.slug)).map((m) => [m.userId, m.role]).sort()).toEqual([[adam.id, 'admin'], [mia.id, 'member'], [owner.id, 'owner']].sort());

    // An admin moves members between member and viewer; an owner grants owner.
    // A role change that rewrote joinedAt must show: the clock is past the join first.
    for (let i = 0; i < 100 && Date.now() <= Date.parse(joined); i++) await new Promise((r) => setTimeout(r, 5));
    const toViewer = await adam.api(`/api/workspaces/${ws.slug}/members/${mia.id}`, { method: 'PUT', body: { role: 'viewer' } });
    expect(toViewer.status).toBe(200);
    expect(await toViewer.json()).toMatchObject({ userId: mia.id, role: 'viewer', joinedAt: joined });
    const toOwner = await owner.api(`/api/workspaces/${ws.slug}/members/${mia.id}`, { method: 'PUT', body: { role: 'owner' } });
    expect(await toOwner.json()).toMatchObject({ role: 'owner', joinedAt: joined });
    expect((await owner.api(`/api/workspaces/${ws.slug}/members/${'0'.repeat(8)}`, { method: 'PUT', body: { role: 'member' } })).status).toBe(404);
    expect((await owner.api(`/api/workspaces/${ws.slug}/members/${mia.id}`, { method: 'PUT', body: { role: 'superuser' } })).status).toBe(400);
    // Each change is audited against the workspace.
    const audit = await asSystem(scene.h.core.db, (tx) => tx.auditLog.findMany({ where: { workspaceId: ws.id, action: 'workspace.member.role' } }));
    expect(audit.map((a) => a.after)).toEqual([{ role: 'viewer' }, { role: 'owner' }]);
  });

  it('lets viewers read but not write, and members leave on their own', async () => {
    const [owner, vera, max] = await Promise.all([person(scene.h, 'Owner'), person(scene.h, 'Vera'), person(scene.h, 'Max')]);
    const ws = await makeWorkspace(owner);
    await join(owner, ws.slug, vera, 'viewer');
    await join(owner, ws.slug, max, 'member');
    for (const path of [`/api/workspaces/${ws.slug}`, `/api/workspaces/${ws.slug}/members`, `/api/workspaces/${ws.slug}/agent-config`]) {
      expect((await vera.api(path)).status, path).toBe(200);
    }
    const writes: Array<[string, string, unknown?]> = [
      ['PATCH', `/api/workspaces/${ws.slug}`, { name: 'Renamed' }],
      ['POST', `/api/workspaces/${ws.slug}/agent/start`],
      ['POST', `/api/workspaces/${ws.slug}/agent/stop`],
      ['PUT', `/api/workspaces/${ws.slug}/agent-config`, { primaryModel: null, fallbackModels: [], personality: 'mine', providerId: null }],
      ['POST', `/api/workspaces/${ws.slug}/providers`, { name: 'p', displayName: 'P', type: 'openai', apiKey: 'sk-viewer' }],
      ['PUT', `/api/workspaces/${ws.slug}/update-config`, { mode: 'manual', preferredHourUtc: null }],
      ['POST', `/api/workspaces/${ws.slug}/invites`, { email: 'z@example.test', role: 'viewer' }],
      ['PUT', `/api/workspaces/${ws.slug}/members/${max.id}`, { role: 'viewer' }],
      ['DELETE', `/api/workspaces/${ws.slug}/members/${max.id}`],
    ];
    for (const [method, path, body] of writes) {
      const res = await vera.api(path, { method, body });
      expect([res.status, await code(res)], `${method} ${path}`).toEqual([403, 'workspace_role_required']);
    }
    expect((await owner.api(`/api/workspaces/${ws.slug}`)).status).toBe(200);
    expect(await (await owner.api(`/api/workspaces/${ws.slug}/agent-config`)).json()).toMatchObject({ personality: null });
    // Leaving is yours to do, whatever your role.
    expect((await vera.api(`/api/workspaces/${ws.slug}/members/${vera.id}`, { method: 'DELETE' })).status).toBe(204);
    expect((await vera.api(`/api/workspaces/${ws.slug}`)).status).toBe(404);
    expect((await max.api(`/api/workspaces/${ws.slug}/members/${owner.id}`, { method: 'DELETE' })).status).toBe(403);
  });

  it('archives (owners only): 410 for everything but an owner\'s read, invitations revoked', async () => {
    const [owner, admin, member] = await Promise.all([person(scene.h, 'Owner'), person(scene.h, 'Admin'), person(scene.h, 'Member')]);
    const ws = await makeWorkspace(owner);
    await join(owner, ws.slug, admin, 'admin');
    await join(owner, ws.slug, member, 'member');
    const renamed = await admin.api(`/api/workspaces/${ws.slug}`, { method: 'PATCH', body: { name: 'Renamed team' } });
    expect(await renamed.json()).toMatchObject({ name: 'Renamed team' });
    const pending = await invite(owner, ws.slug, 'later@teams.example.test', 'member');
    expect((await admin.api(`/api/workspaces/${ws.slug}/archive`, { method: 'POST' })).status).toBe(403);
    const archived = await owner.api(`/api/workspaces/${ws.slug}/archive`, { method: 'POST' });
    expect(archived.status).toBe(200);
    expect((await archived.json()).archivedAt).not.toBeNull();

    const read = await owner.api(`/api/workspaces/${ws.slug}`);
    expect(read.status).toBe(200);
    expect((await read.json()).archivedAt).not.toBeNull();
    for (const who of [admin, member]) {
      const res = await who.api(`/api/workspaces/${ws.slug}`);
      expect([res.status, await code(res)]).toEqual([410, 'workspace_archived']);
      expect((await (await who.api('/api/workspaces')).json()).some((w: { slug: string }) => w.slug === ws.slug)).toBe(false);
    }
    for (const [method, path, body] of [
      ['GET', `/api/workspaces/${ws.slug}/members`],
      ['PATCH', `/api/workspaces/${ws.slug}`, { name: 'x' }],
      ['POST', `/api/workspaces/${ws.slug}/agent/start`],
      ['POST', `/api/workspaces/${ws.slug}/invites`, { email: 'n@example.test', role: 'member' }],
      ['DELETE', `/api/workspaces/${ws.slug}/members/${member.id}`],
      ['POST', `/api/workspaces/${ws.slug}/archive`],
    ] as Array<[string, string, unknown?]>) {
      expect((await owner.api(path, { method, body })).status, `${method} ${path}`).toBe(410);
    }
    expect((await (await owner.api('/api/workspaces')).json()).find((w: { slug: string }) => w.slug === ws.slug)?.archivedAt).not.toBeNull();
    const row = await asSystem(scene.h.core.db, (tx) => tx.invite.findUniqueOrThrow({ where: { id: pending.id } }));
    expect(row.revokedAt).not.toBeNull();
  });

  it('lets an instance admin override a workspace\'s update mode, and the workspace still keeps its own', async () => {
    const owner = await person(scene.h, 'Owner');
    const ws = await makeWorkspace(owner);
    const { createTestUser } = await import('../support/hangar.harness.ts');
    const admin = await createTestUser(scene.h, 'admin');
    expect((await owner.api(`/api/workspaces/${ws.slug}/update-config`, { method: 'PUT', body: { mode: 'auto', preferredHourUtc: 3 } })).status).toBe(200);
    expect((await owner.api(`/api/admin/workspaces/${ws.slug}/update-override`, { method: 'PUT', body: { mode: 'manual' } })).status).toBe(403);
    const set = await admin.api(`/api/admin/workspaces/${ws.slug}/update-override`, { method: 'PUT', body: { mode: 'manual' } });
    expect(await set.json()).toEqual({ mode: 'auto', preferredHourUtc: 3, modeOverride: 'manual', effectiveMode: 'manual' });
    expect(await (await owner.api(`/api/workspaces/${ws.slug}/update-config`)).json()).toMatchObject({ modeOverride: 'manual', effectiveMode: 'manual' });
    const listed = (await (await admin.api('/api/admin/workspaces?limit=200')).json()).data.find((w: { slug: string }) => w.slug === ws.slug);
    expect(listed).toMatchObject({ personal: false, memberCount: 1, updateConfig: { effectiveMode: 'manual' } });
    // The rollout planner sees the override.
    const agent = await scene.h.core.agents.getOrCreate('workspace', ws.id);
    const { targets } = await scene.h.core.rollouts.targets({ image: agent.image, toDigest: `sha256:${'c'.repeat(64)}`, agentIds: [agent.id] });
    expect(targets[0]).toMatchObject({ workspaceId: ws.id, mode: 'manual', preferredHourUtc: 3 });
    const lifted = await admin.api(`/api/admin/workspaces/${ws.slug}/update-override`, { method: 'PUT', body: { mode: null } });
    expect((await lifted.json()).effectiveMode).toBe('auto');
    expect((await admin.api('/api/admin/workspaces/no-such-ws/update-override', { method: 'PUT', body: { mode: 'auto' } })).status).toBe(404);
  });
});
