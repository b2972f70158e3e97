import { describe, expect, it } from 'vitest';
import { createTestUser, useScene, type TestUser } from '../support/hangar.harness.ts';
import { giveProvider } from '../support/scenario.ts';

// Two members and an admin try each other's resources through every route that
// takes an id or acts on "mine": 404 or 403 everywhere, nothing changes, and
// no answer an admin gets carries another user's key material.
describe('isolation between tenants, admins included', () => {
  const scene = useScene();

  it('nobody reaches another user\'s providers, config, agent or chat', async () => {
    const [a, b, admin] = await Promise.all([createTestUser(scene.h), createTestUser(scene.h), createTestUser(scene.h, 'admin')]);
    const keys = { a: 'sk-secret-of-a-1111', b: 'sk-secret-of-b-2222' };
    const pa = await giveProvider(a, scene.fake, keys.a);
    const pb = await giveProvider(b, scene.fake, keys.b);
    const started = await a.api('/api/me/agent/start', { method: 'POST' });
    const agentA = (await started.json()).id as string;
    scene.agentIds.push(agentA);
    const before = JSON.stringify(await scene.h.core.providers.list(a.id));

    const attempts: Array<[TestUser, string, string, unknown?]> = [];
    for (const intruder of [b, admin]) {
      attempts.push(
        [intruder, 'PATCH', `/api/me/providers/${pa.id}`, { displayName: 'owned' }],
        [intruder, 'DELETE', `/api/me/providers/${pa.id}`],
        [intruder, 'POST', `/api/me/providers/${pa.id}/test`],
        [intruder, 'PUT', '/api/me/agent-config', { primaryModel: null, fallbackModels: [], personality: null, providerId: pa.id }],
        [intruder, 'POST', '/api/chat', { messages: [{ role: 'user', content: 'hi' }], agentId: agentA }],
        [intruder, 'DELETE', `/api/tokens/${pa.id}`],
      );
    }
    attempts.push([a, 'PATCH', `/api/me/providers/${pb.id}`, { displayName: 'owned' }]);
    attempts.push([a, 'GET', '/api/admin/users']);
    for (const [who, method, path, body] of attempts) {
      const res = await who.api(path, { method, body });
      expect([400, 403, 404], `${method} ${path}`).toContain(res.status);
    }
    expect(JSON.stringify(await scene.h.core.providers.list(a.id))).toBe(before);

    // The agent's own config endpoint refuses user tokens, the admin's included.
    const internal = await fetch(`${scene.h.url}/api/internal/agent-config/user/${agentA}`, { headers: { authorization: `Bearer ${admin.token}` } });
    expect(internal.status).toBe(401);

    // Everything an admin can read: no key material of anyone else.
    const adminReads = ['/api/admin/users?limit=200', '/api/me/providers', '/api/me/agent-config', '/api/tokens', '/api/auth/me', '/metrics'];
    for (const path of adminReads) {
      const text = await (await admin.api(path)).text();
      expect(text).not.toContain(keys.a);
      expect(text).not.toContain(keys.b);
      expect(text).not.toContain('enc:v1:');
    }
    // The fleet view: status for every agent, nothing of their config; members may not look.
    const fleet = await admin.api('/api/admin/agents?limit=200');
    expect(fleet.status).toBe(200);
    const fleetText = await fleet.text();
    const row = JSON.parse(fleetText).data.find((r: { id: string }) => r.id === agentA);
    expect(row).toMatchObject({ ownerKind: 'user', ownerId: a.id, status: 'running', workflowId: `agent/${agentA}` });
    expect(fleetText).not.toMatch(/gatewayToken|enc:v1:|sk-secret/);
    expect((await b.api('/api/admin/agents')).status).toBe(403);
    const stopped = await admin.api(`/api/admin/agents/${agentA}/stop`, { method: 'POST' });
    expect((await stopped.json()).status).toBe('stopped');
    expect((await admin.api('/api/admin/agents/nope/restart', { method: 'POST' })).status).toBe(404);
    expect(await scene.h.core.db.auditLog.count({ where: { target: `agent:${agentA}`, action: 'agent.stop' } })).toBe(1);

    // Members see only themselves.
    const bList = await (await b.api('/api/me/providers')).json();
    expect(bList.map((p: { id: string }) => p.id)).toEqual([pb.id]);
    expect(JSON.stringify(bList)).not.toContain(keys.b);
  });
});
