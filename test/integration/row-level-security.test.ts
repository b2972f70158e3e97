import pg from 'pg';
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
});
