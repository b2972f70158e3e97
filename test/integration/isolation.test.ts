import { asSystem } from '../../core/db.ts';
import { describe, expect, it } from 'vitest';
import { createTestUser, useScene, type TestUser } from '../support/hangar.harness.ts';
import { giveProvider } from '../support/scenario.ts';
import { invite, join, makeWorkspace, person, workspaceProvider, type Person } from '../support/teams.ts';

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
    expect(await asSystem(scene.h.core.db, (tx) => tx.auditLog.count({ where: { target: `agent:${agentA}`, action: 'agent.stop' } }))).toBe(1);

    // Members see only themselves.
    const bList = await (await b.api('/api/me/providers')).json();
    expect(bList.map((p: { id: string }) => p.id)).toEqual([pb.id]);
    expect(JSON.stringify(bList)).not.toContain(keys.b);
  });

  it('workspaces: a member of A against B, a viewer against writes, a removed member against everything, all at once', async () => {
    const h = scene.h;
    const [ownerA, memberA, viewerA, removedA, ownerB] = await Promise.all(['OwnerA', 'MemberA', 'ViewerA', 'RemovedA', 'OwnerB'].map((n) => person(h, n)));
    const a = await makeWorkspace(ownerA, 'iso-a');
    const b = await makeWorkspace(ownerB, 'iso-b');
    await join(ownerA, a.slug, memberA, 'member');
    await join(ownerA, a.slug, viewerA, 'viewer');
    await join(ownerA, a.slug, removedA, 'member');
    expect((await ownerA.api(`/api/workspaces/${a.slug}/members/${removedA.id}`, { method: 'DELETE' })).status).toBe(204);
    const providerB = await workspaceProvider(ownerB, b.slug, scene.fake, 'sk-iso-b-secret-5150');
    const inviteB = await invite(ownerB, b.slug, 'pending-b@teams.example.test', 'member');
    const agentA = await h.core.agents.getOrCreate('workspace', a.id);
    const agentB = await h.core.agents.getOrCreate('workspace', b.id);
    const snapshot = async () => JSON.stringify(await asSystem(h.core.db, async (tx) => ({
      members: await tx.workspaceMember.findMany({ where: { workspaceId: { in: [a.id, b.id] } }, orderBy: [{ workspaceId: 'asc' }, { userId: 'asc' }] }),
      workspaces: await tx.workspace.findMany({ where: { id: { in: [a.id, b.id] } }, orderBy: { id: 'asc' } }),
      invites: await tx.invite.findMany({ where: { workspaceId: { in: [a.id, b.id] } }, orderBy: { id: 'asc' } }),
      providers: await tx.llmProvider.findMany({ where: { workspaceId: { in: [a.id, b.id] } }, orderBy: { id: 'asc' } }),
      configs: await tx.agentConfig.findMany({ where: { ownerId: { in: [a.id, b.id] } }, orderBy: { ownerId: 'asc' } }),
      updates: await tx.tenantUpdateConfig.findMany({ where: { workspaceId: { in: [a.id, b.id] } } }),
      agents: await tx.agent.findMany({ where: { id: { in: [agentA.id, agentB.id] } }, select: { id: true, status: true } }),
    })));
    const before = await snapshot();

    /** Every route of a workspace, reads and writes, with a body that would pass validation. */
    const everything = (slug: string, agentId: string, providerId: string, userId: string, inviteId: string): Array<[string, string, unknown?]> => [
      ['GET', `/api/workspaces/${slug}`],
      ['PATCH', `/api/workspaces/${slug}`, { name: 'owned' }],
      ['POST', `/api/workspaces/${slug}/archive`],
      ['GET', `/api/workspaces/${slug}/members`],
      ['PUT', `/api/workspaces/${slug}/members/${userId}`, { role: 'viewer' }],
      ['DELETE', `/api/workspaces/${slug}/members/${userId}`],
      ['GET', `/api/workspaces/${slug}/invites`],
      ['POST', `/api/workspaces/${slug}/invites`, { email: 'intruder@teams.example.test', role: 'owner' }],
      ['DELETE', `/api/workspaces/${slug}/invites/${inviteId}`],
      ['GET', `/api/workspaces/${slug}/update-config`],
      ['PUT', `/api/workspaces/${slug}/update-config`, { mode: 'manual', preferredHourUtc: 1 }],
      ['GET', `/api/workspaces/${slug}/agent`],
      ['POST', `/api/workspaces/${slug}/agent/start`],
      ['POST', `/api/workspaces/${slug}/agent/stop`],
      ['GET', `/api/workspaces/${slug}/agent-config`],
      ['PUT', `/api/workspaces/${slug}/agent-config`, { primaryModel: null, fallbackModels: [], personality: 'owned', providerId: null }],
      ['GET', `/api/workspaces/${slug}/providers`],
      ['POST', `/api/workspaces/${slug}/providers`, { name: 'evil', displayName: 'Evil', type: 'openai', apiKey: 'sk-evil' }],
      ['PATCH', `/api/workspaces/${slug}/providers/${providerId}`, { baseUrl: 'http://attacker.test/v1' }],
      ['DELETE', `/api/workspaces/${slug}/providers/${providerId}`],
      ['POST', '/api/chat', { messages: [{ role: 'user', content: 'hi' }], agentId }],
      ['GET', `/api/chat/sessions?agentId=${agentId}`],
    ];
    const writesOfA: Array<[string, string, unknown?]> = everything(a.slug, agentA.id, providerB.id, memberA.id, inviteB.id)
      .filter(([method, path]) => method !== 'GET' && !path.endsWith(`/members/${viewerA.id}`));
    const attempts: Array<[Person, number[], [string, string, unknown?]]> = [
      ...everything(b.slug, agentB.id, providerB.id, ownerB.id, inviteB.id).map((c) => [memberA, [404], c] as [Person, number[], [string, string, unknown?]]),
      ...writesOfA.map((c) => [viewerA, [403], c] as [Person, number[], [string, string, unknown?]]),
      ...everything(a.slug, agentA.id, providerB.id, memberA.id, inviteB.id).map((c) => [removedA, [404], c] as [Person, number[], [string, string, unknown?]]),
    ];
    const answers = await Promise.all(attempts.map(async ([who, allowed, [method, path, body]]) => {
      const res = await who.api(path, { method, body });
      const text = await res.text();
      return { who: who.name, method, path, status: res.status, allowed, text };
    }));
    const wrong = answers.filter((r) => !r.allowed.includes(r.status)).map((r) => `${r.who} ${r.method} ${r.path} → ${r.status} ${r.text.slice(0, 120)}`);
    expect(wrong).toEqual([]);
    for (const r of answers) expect(r.text, `${r.method} ${r.path}`).not.toMatch(/sk-iso-b-secret|enc:v1:/);
    expect(await snapshot()).toBe(before);
    expect(scene.fake.seen.some((s) => JSON.stringify(s.body).includes('"hi"') && s.authorization === 'Bearer sk-iso-b-secret-5150')).toBe(false);
  });
});
