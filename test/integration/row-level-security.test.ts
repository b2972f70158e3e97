import pg from 'pg';
import crypto from 'node:crypto';
import { describe, expect, inject, it } from 'vitest';
import { asSystem, asUser } from '../../core/db.ts';
import { createTestUser, startHangar } from '../support/hangar.harness.ts';

// The second wall: even a query that forgets its scope sees no other tenant's
// rows, because the application's role is bound by row-level security.
describe('row-level security', () => {
  it('the application role is neither superuser nor BYPASSRLS', async () => {
    const client = new pg.Client({ connectionString: inject('stack').databaseUrl });
    await client.connect();
    const { rows } = await client.query('SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user');
    await client.end();
    expect(rows[0]).toEqual({ rolsuper: false, rolbypassrls: false });
  });

  it('an unscoped query returns only the caller\'s rows, or none without a caller', async () => {
    const h = await startHangar({}, { worker: false });
    try {
      const [a, b] = await Promise.all([createTestUser(h), createTestUser(h)]);
      for (const [u, key] of [[a, 'sk-aaaa'], [b, 'sk-bbbb']] as const) {
        const res = await u.api('/api/me/providers', { body: { name: 'p', displayName: 'P', type: 'openai', apiKey: key } });
        expect(res.status).toBe(201);
        await u.api('/api/me/agent-config', { method: 'PUT', body: { primaryModel: 'p/x', fallbackModels: [], personality: 'secret persona', providerId: null } });
      }
      const db = h.core.db;
      // "Forgot the where clause": still only A's rows.
      const seenByA = await asUser(db, a.id, (tx) => tx.llmProvider.findMany());
      expect(seenByA.map((p) => p.userId)).toEqual([a.id]);
      expect((await asUser(db, a.id, (tx) => tx.agentConfig.findMany())).every((c) => c.ownerId === a.id)).toBe(true);
      // No caller at all: nothing, on every tenant table.
      expect(await db.llmProvider.findMany()).toEqual([]);
      expect(await db.agentConfig.findMany()).toEqual([]);
      expect(await db.agent.findMany()).toEqual([]);
      expect(await db.session.findMany()).toEqual([]);
      expect(await db.apiToken.findMany()).toEqual([]);
      // A user sees their own tokens and agent rows only.
      await h.core.agents.getOrCreate('user', a.id);
      await h.core.agents.getOrCreate('user', b.id);
      expect((await asUser(db, a.id, (tx) => tx.apiToken.findMany())).map((t) => t.userId)).toEqual([a.id]);
      expect((await asUser(db, a.id, (tx) => tx.agent.findMany())).map((r) => r.ownerId)).toEqual([a.id]);
      // Writing into another tenant is refused by the policy's check.
      await expect(asUser(db, a.id, (tx) => tx.llmProvider.create({ data: { userId: b.id, name: 'evil', displayName: 'E', type: 'openai' } }))).rejects.toThrow();
      await expect(asUser(db, a.id, (tx) => tx.llmProvider.updateMany({ where: { userId: b.id }, data: { displayName: 'pwned' } }))).resolves.toEqual({ count: 0 });
      // Declared system work sees both.
      const all = await asSystem(db, (tx) => tx.llmProvider.findMany({ where: { userId: { in: [a.id, b.id] } } }));
      expect(all).toHaveLength(2);
      expect(all.find((p) => p.userId === b.id)?.displayName).toBe('P');
    } finally {
      await h.stop();
    }
  });

  it('keeps workspaces, members, invites, update configs, the audit log and workspace providers and agents to their members', async () => {
    const h = await startHangar({}, { worker: false });
    try {
      const db = h.core.db;
      const mk = async (name: string) => h.core.users.create({ username: `${name}-${crypto.randomUUID().slice(0, 8)}`, email: `${name}-${crypto.randomUUID().slice(0, 8)}@rls.test`, displayName: name });
      const [a, b, v] = await Promise.all([mk('a'), mk('b'), mk('v')]);
      const wa = await h.core.workspaces.create(a.id, { slug: `rls-a-${a.id.slice(0, 8)}`, name: 'A' });
      const wb = await h.core.workspaces.create(b.id, { slug: `rls-b-${b.id.slice(0, 8)}`, name: 'B' });
      const inv = await h.core.invites.create({ id: a.id, displayName: 'a' }, wa.slug, { email: v.email!, role: 'viewer' });
      await h.core.invites.accept(v, inv.token);
      await h.core.invites.create({ id: b.id, displayName: 'b' }, wb.slug, { email: 'someone@rls.test', role: 'member' });
      await h.core.fleet.putUpdateConfig(wb.id, { mode: 'manual', preferredHourUtc: null });
      await h.core.workspaceAgents.createProvider(b.id, wb.slug, { name: 'wb', displayName: 'WB', type: 'openai', apiKey: 'sk-wb-secret' });
      await h.core.agents.getOrCreate('workspace', wa.id);
      await h.core.agents.getOrCreate('workspace', wb.id);

      // "Forgot the where clause": A sees A's workspace, its members, invites, config, audit; nothing of B's.
      const ids = (rows: Array<{ workspaceId?: string | null; id?: string; ownerId?: string }>) => rows.map((r) => r.workspaceId ?? r.ownerId ?? r.id);
      expect(ids(await asUser(db, a.id, (tx) => tx.workspace.findMany()))).toEqual([wa.id]);
      expect(new Set(ids(await asUser(db, a.id, (tx) => tx.workspaceMember.findMany())))).toEqual(new Set([wa.id]));
      expect(ids(await asUser(db, a.id, (tx) => tx.invite.findMany()))).toEqual([wa.id]);
      expect(await asUser(db, a.id, (tx) => tx.tenantUpdateConfig.findMany())).toEqual([]);
      expect(new Set(ids(await asUser(db, a.id, (tx) => tx.auditLog.findMany())))).toEqual(new Set([wa.id]));
      expect(await asUser(db, a.id, (tx) => tx.llmProvider.findMany({ where: { workspaceId: { not: null } } }))).toEqual([]);
      expect(ids(await asUser(db, a.id, (tx) => tx.agent.findMany({ where: { ownerKind: 'workspace' } })))).toEqual([wa.id]);
      // B, an owner, sees B's own; the workspace provider's row is B's to read (its key stays sealed).
      expect((await asUser(db, b.id, (tx) => tx.llmProvider.findMany({ where: { workspaceId: wb.id } })))[0]?.apiKey).toMatch(/^enc:v1:/);
      expect(ids(await asUser(db, b.id, (tx) => tx.tenantUpdateConfig.findMany()))).toEqual([wb.id]);

      // A viewer reads the workspace and its members, never its invites, and cannot write.
      expect(ids(await asUser(db, v.id, (tx) => tx.workspace.findMany()))).toEqual([wa.id]);
      expect(await asUser(db, v.id, (tx) => tx.workspaceMember.count({ where: { workspaceId: wa.id } }))).toBe(2);
      expect(await asUser(db, v.id, (tx) => tx.invite.findMany())).toEqual([]);
      await expect(asUser(db, v.id, (tx) => tx.workspaceMember.updateMany({ where: { workspaceId: wa.id }, data: { role: 'owner' } }))).resolves.toEqual({ count: 0 });
      await expect(asUser(db, v.id, (tx) => tx.workspace.updateMany({ where: { id: wa.id }, data: { name: 'pwned' } }))).resolves.toEqual({ count: 0 });
      await expect(asUser(db, v.id, (tx) => tx.workspaceMember.create({ data: { workspaceId: wb.id, userId: v.id, role: 'owner' } }))).rejects.toThrow();
      // A owner of A is nobody in B: joining B by hand is refused by the policy's check.
      await expect(asUser(db, a.id, (tx) => tx.workspaceMember.create({ data: { workspaceId: wb.id, userId: a.id, role: 'owner' } }))).rejects.toThrow();
      await expect(asUser(db, a.id, (tx) => tx.invite.updateMany({ where: { workspaceId: wb.id }, data: { revokedAt: new Date() } }))).resolves.toEqual({ count: 0 });

      // No caller: nothing, on every one of these tables.
      for (const rows of [await db.workspace.findMany(), await db.workspaceMember.findMany(), await db.invite.findMany(), await db.tenantUpdateConfig.findMany(), await db.auditLog.findMany()]) {
        expect(rows).toEqual([]);
      }
    } finally {
      await h.stop();
    }
  });
});
