import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { asSystem } from '../../core/db.ts';
import { createTestUser, eventually, useScene } from '../support/hangar.harness.ts';
import { giveProvider } from '../support/scenario.ts';

// System agents after onboarding (GET/POST /api/admin/system-agents, DELETE
// /:id): made with one of the admin's providers, started at once (always on),
// removed through their lifecycle; the volume stays.
describe('system agents', () => {
  const scene = useScene();

  it('an admin creates one with their provider; it starts; members see nothing', async () => {
    const admin = await createTestUser(scene.h, 'admin');
    const provider = await giveProvider(admin, scene.fake);
    const member = await createTestUser(scene.h);
    const theirs = await giveProvider(member, scene.fake);
    const name = `ops-${randomUUID().slice(0, 8)}`;
    const body = { name, role: 'You watch the fleet and answer operators.', providerId: provider.id, primaryModel: 'fake/fake-model' };

    const foreign = await admin.api('/api/admin/system-agents', { body: { ...body, providerId: theirs.id } });
    expect(foreign.status).toBe(400);
    expect((await foreign.json()).error.code).toBe('invalid_provider');
    for (const bad of [{ ...body, name: 'Not A Name' }, { ...body, role: '' }, { ...body, extra: 1 }]) {
      expect((await admin.api('/api/admin/system-agents', { body: bad })).status).toBe(400);
    }
    expect((await member.api('/api/admin/system-agents', { body })).status).toBe(403);
    expect((await member.api('/api/admin/system-agents')).status).toBe(403);

    const created = await admin.api('/api/admin/system-agents', { body });
    expect(created.status).toBe(201);
    const agent = await created.json();
    scene.agentIds.push(agent.id);
    expect(agent).toMatchObject({ name, role: body.role, providerId: provider.id, primaryModel: 'fake/fake-model', workflowId: `agent/${agent.id}` });
    expect((await admin.api('/api/admin/system-agents', { body })).status).toBe(409);
    const audit = await asSystem(scene.h.core.db, (tx) => tx.auditLog.findMany({ where: { action: 'system_agent.create', target: `agent:${agent.id}` } }));
    expect(audit).toHaveLength(1);
    expect(audit[0].actorId).toBe(admin.id);

    const listed = await (await admin.api('/api/admin/system-agents')).json();
    expect(listed.data.map((a: { id: string }) => a.id)).toContain(agent.id);
    // Always on: it comes up without anyone asking.
    await eventually(async () => (await scene.h.core.agents.get(agent.id)).status === 'running', 'the system agent running', 120_000);
  });

  it('removal stops it through its lifecycle, deletes its row and config, keeps its volume; other agents are not system agents', async () => {
    const admin = await createTestUser(scene.h, 'admin');
    const provider = await giveProvider(admin, scene.fake);
    const name = `gone-${randomUUID().slice(0, 8)}`;
    const created = await admin.api('/api/admin/system-agents', { body: { name, role: 'Short-lived.', providerId: provider.id, primaryModel: 'fake/fake-model' } });
    expect(created.status).toBe(201);
    const { id } = await created.json();
    scene.agentIds.push(id);
    await eventually(async () => (await scene.h.core.agents.get(id)).status === 'running', 'the system agent running', 120_000);
    const volume = (await scene.h.core.agents.get(id)).volumeName;

    // A user's agent is not removable here.
    const member = await createTestUser(scene.h);
    const own = await scene.h.core.agents.getOrCreate('user', member.id);
    scene.agentIds.push(own.id);
    expect((await admin.api(`/api/admin/system-agents/${own.id}`, { method: 'DELETE' })).status).toBe(404);
    expect((await admin.api(`/api/admin/system-agents/${randomUUID()}`, { method: 'DELETE' })).status).toBe(404);
    expect((await member.api(`/api/admin/system-agents/${id}`, { method: 'DELETE' })).status).toBe(403);

    const removed = await admin.api(`/api/admin/system-agents/${id}`, { method: 'DELETE' });
    expect(removed.status).toBe(204);
    await expect(scene.h.core.agents.get(id)).rejects.toThrow(/not found/);
    expect(await asSystem(scene.h.core.db, (tx) => tx.agentConfig.count({ where: { ownerKind: 'system', ownerId: name } }))).toBe(0);
    const running = await scene.h.docker.getContainer(`hangar-agent-${id}`).inspect().then((i) => i.State.Running, () => false);
    expect(running).toBe(false);
    // Its lifecycle ended (terminated), so nothing brings it back.
    const described = await scene.h.temporal.workflow.getHandle(`agent/${id}`).describe();
    expect(described.status.name).toBe('TERMINATED');
    expect((await scene.h.docker.getVolume(volume).inspect()).Name).toBe(volume);
    const audit = await asSystem(scene.h.core.db, (tx) => tx.auditLog.findMany({ where: { action: 'system_agent.remove', target: `agent:${id}` } }));
    expect(audit).toHaveLength(1);
    expect(audit[0].before).toMatchObject({ name, volumeKept: volume });
    expect((await (await admin.api('/api/admin/system-agents')).json()).data.map((a: { id: string }) => a.id)).not.toContain(id);
    expect((await admin.api(`/api/admin/system-agents/${id}`, { method: 'DELETE' })).status).toBe(404);
    // The name is free again.
    const again = await admin.api('/api/admin/system-agents', { body: { name, role: 'Back.', providerId: provider.id, primaryModel: 'fake/fake-model' } });
    expect(again.status).toBe(201);
    scene.agentIds.push((await again.json()).id);
  });
});
