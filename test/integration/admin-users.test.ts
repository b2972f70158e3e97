import { asSystem } from '../../core/db.ts';
import { describe, expect, it } from 'vitest';
import { createTestUser, freshDatabase, startHangar, useScene } from '../support/hangar.harness.ts';
import { giveProvider } from '../support/scenario.ts';

// Admins manage users; members cannot; every change is audited; deactivation
// ends sessions and tokens within one request and stops the user's agent.
describe('admin user management', () => {
  const scene = useScene();

  it('is for admins only', async () => {
    const member = await createTestUser(scene.h);
    expect((await member.api('/api/admin/users')).status).toBe(403);
    expect((await member.api('/api/admin/users', { body: { email: 'x@example.com', displayName: 'X', role: 'admin' } })).status).toBe(403);
    expect((await fetch(`${scene.h.url}/api/admin/users`)).status).toBe(401);
    const res = await fetch(`${scene.h.url}/api/admin/users`);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('lists with pagination, creates, changes roles, and audits each change', async () => {
    const admin = await createTestUser(scene.h, 'admin');
    const page = await (await admin.api('/api/admin/users?page=1&limit=2')).json();
    expect(page.data).toHaveLength(2);
    expect(page.meta).toMatchObject({ page: 1, limit: 2 });
    expect(page.meta.totalPages).toBe(Math.ceil(page.meta.total / 2));
    expect(JSON.stringify(page)).not.toMatch(/passwordHash|\$2[ab]\$/);

    for (const q of ['limit=500', 'page=0', 'limit=abc', 'sort=evil']) {
      const bad = await admin.api(`/api/admin/users?${q}`);
      expect(bad.status, q).toBe(400);
    }

    const email = `new-${Date.now()}@example.com`;
    const created = await admin.api('/api/admin/users', { body: { email, displayName: 'New Person', role: 'member', password: 'long enough password' } });
    expect(created.status).toBe(201);
    const user = await created.json();
    expect(user).toMatchObject({ email, role: 'member', status: 'active' });
    expect((await admin.api('/api/admin/users', { body: { email, displayName: 'Again', role: 'member' } })).status).toBe(409);
    expect((await admin.api('/api/admin/users', { body: { email: 'not-an-email', displayName: 'X', role: 'member' } })).status).toBe(400);
    expect((await admin.api('/api/admin/users', { body: { email: 'a@b.co', displayName: 'X', role: 'root' } })).status).toBe(400);
    expect((await admin.api(`/api/admin/users/${user.id}`, { method: 'PATCH', body: {} })).status).toBe(400);
    expect((await admin.api('/api/admin/users/nope', { method: 'PATCH', body: { role: 'admin' } })).status).toBe(404);

    const promoted = await admin.api(`/api/admin/users/${user.id}`, { method: 'PATCH', body: { role: 'admin' } });
    expect((await promoted.json()).role).toBe('admin');
    const audit = await asSystem(scene.h.core.db, (tx) => tx.auditLog.findMany({ where: { target: `user:${user.id}` }, orderBy: { at: 'asc' } }));
    expect(audit.map((a) => a.action)).toEqual(['user.create', 'user.update']);
    expect(audit[1].actorId).toBe(admin.id);
    expect(audit[1].before).toMatchObject({ role: 'member' });
    expect(audit[1].after).toMatchObject({ role: 'admin' });
    expect(JSON.stringify(audit)).not.toContain('long enough password');
  });

  it('deactivation kills sessions and tokens at once and stops the agent; never yourself', async () => {
    const admin = await createTestUser(scene.h, 'admin');
    const victim = await createTestUser(scene.h);
    await giveProvider(victim, scene.fake);
    const started = await victim.api('/api/me/agent/start', { method: 'POST' });
    expect(started.status).toBe(200);
    const agentId = (await started.json()).id;
    scene.agentIds.push(agentId);

    expect((await admin.api(`/api/admin/users/${admin.id}/deactivate`, { method: 'POST' })).status).toBe(409);
    const res = await admin.api(`/api/admin/users/${victim.id}/deactivate`, { method: 'POST' });
    expect(res.status).toBe(200);
    expect((await res.json()).status).toBe('deactivated');
    const after = await victim.api('/api/me/providers');
    expect(after.status).toBe(401);
    expect((await scene.h.core.agents.get(agentId)).status).toBe('stopped');
    const info = await scene.h.docker.getContainer(`hangar-agent-${agentId}`).inspect();
    expect(info.State.Running).toBe(false);
    expect(await asSystem(scene.h.core.db, (tx) => tx.auditLog.count({ where: { target: `user:${victim.id}`, action: 'user.deactivate' } }))).toBe(1);
  });

  it('suspension stops the agent through its lifecycle and keeps everything; after reactivation the owner starts it again', async () => {
    const admin = await createTestUser(scene.h, 'admin');
    const owner = await createTestUser(scene.h);
    await giveProvider(owner, scene.fake);
    const started = await owner.api('/api/me/agent/start', { method: 'POST' });
    expect(started.status).toBe(200);
    const agentId = (await started.json()).id;
    scene.agentIds.push(agentId);
    const container = scene.h.docker.getContainer(`hangar-agent-${agentId}`);
    const volume = (await scene.h.core.agents.get(agentId)).volumeName;

    const res = await admin.api(`/api/admin/users/${owner.id}/suspend`, { method: 'POST' });
    expect(res.status).toBe(200);
    expect((await owner.api('/api/me/agent')).status).toBe(401);
    const agent = await scene.h.core.agents.get(agentId);
    expect(agent.status).toBe('stopped');
    expect(agent.statusReason).toBe('owner_suspended');
    const running = await container.inspect().then((i) => i.State.Running, () => false);
    expect(running).toBe(false);
    // Nothing is deleted: the agent's row, its volume and the owner's provider stay.
    expect((await scene.h.docker.getVolume(volume).inspect()).Name).toBe(volume);
    expect(await scene.h.core.providers.list(owner.id)).toHaveLength(1);

    expect((await admin.api(`/api/admin/users/${owner.id}/reactivate`, { method: 'POST' })).status).toBe(200);
    const again = await owner.api('/api/me/agent/start', { method: 'POST' });
    expect(again.status).toBe(200);
    expect((await again.json()).id).toBe(agentId);
    expect((await scene.h.core.agents.get(agentId)).status).toBe('running');
  });

  it('never leaves the instance without an active admin', async () => {
    const db = await freshDatabase();
    const h = await startHangar({ DATABASE_URL: db.url }, { worker: false });
    try {
      const only = await createTestUser(h, 'admin');
      const demote = await only.api(`/api/admin/users/${only.id}`, { method: 'PATCH', body: { role: 'member' } });
      expect(demote.status).toBe(409);
      expect((await demote.json()).error.code).toBe('last_admin');
      const second = await createTestUser(h, 'admin');
      const third = await createTestUser(h, 'admin');
      expect((await second.api(`/api/admin/users/${only.id}/deactivate`, { method: 'POST' })).status).toBe(200);
      expect((await third.api(`/api/admin/users/${second.id}/deactivate`, { method: 'POST' })).status).toBe(200);
      const last = await third.api(`/api/admin/users/${third.id}`, { method: 'PATCH', body: { role: 'member' } });
      expect((await last.json()).error.code).toBe('last_admin');
      expect(await h.core.db.user.count({ where: { role: 'admin', status: 'active' } })).toBe(1);
    } finally {
      await h.stop();
      await db.drop();
    }
  });

  it('API tokens can be narrower than their owner, never wider', async () => {
    const admin = await createTestUser(scene.h, 'admin');
    const member = await createTestUser(scene.h);
    const mk = async (user: typeof admin, scopes: string[]) => user.api('/api/tokens', { body: { name: 'scoped', scopes } });
    expect((await mk(member, ['admin'])).status).toBe(400);
    expect((await mk(member, ['root'])).status).toBe(400);
    const agentOnly = (await (await mk(admin, ['agent'])).json()).token;
    const as = (token: string, path: string) => fetch(`${scene.h.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
    const denied = await as(agentOnly, '/api/admin/users');
    expect(denied.status).toBe(403);
    expect((await denied.json()).error.code).toBe('insufficient_scope');
    expect((await as(agentOnly, '/api/me/providers')).status).toBe(403);
    expect((await as(agentOnly, '/api/me/agent')).status).toBe(404);
    expect((await as(agentOnly, '/api/auth/me')).status).toBe(200);
    const adminScoped = (await (await mk(admin, ['admin'])).json()).token;
    expect((await as(adminScoped, '/api/admin/users')).status).toBe(200);
    const list = await (await admin.api('/api/tokens')).json();
    expect(list.find((t: { scopes: string[] }) => t.scopes.includes('agent'))).toBeTruthy();
  });

  it('throttles repeated failed sign-ins per account with 429 and Retry-After', async () => {
    const username = `throttle-${Date.now()}`;
    await scene.h.core.users.create({ username, password: 'the right password' });
    const login = (password: string) =>
      fetch(`${scene.h.url}/api/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username, password }),
      });
    for (let i = 0; i < 5; i++) expect((await login('wrong password!')).status).toBe(401);
    const blocked = await login('the right password');
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
  });
});
