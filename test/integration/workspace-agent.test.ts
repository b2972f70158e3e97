import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentContainerName } from '../../core/contracts/agent.contract.ts';
import { MEMBER_DRIFT_SCHEDULE_ID } from '../../core/contracts/workspace.contract.ts';
import { asSystem } from '../../core/db.ts';
import { systemPrompt, userWords } from '../support/fake-openai.ts';
import { eventually, useScene } from '../support/hangar.harness.ts';
import { join, makeWorkspace, person, workspaceProvider, type Person } from '../support/teams.ts';

// A workspace's shared agent on the real stack (reference agent): members
// start it and chat with it, viewers only read, keys never come back out, the
// agent is told who is speaking (never what a caller claims), and every
// membership change reaches the agent through memberProvisioning — also when
// the agent is down during the change, and when its list drifts.

interface AgentMemberRow {
  userId: string;
  role: string;
  email: string | null;
  displayName: string;
}

describe('workspace agents', () => {
  const scene = useScene();
  let owner: Person;
  let mia: Person;
  let vic: Person;
  let otto: Person;
  let ws: { id: string; slug: string };
  let agentId: string;
  const code = async (res: Response) => ((await res.json()) as { error?: { code?: string } }).error?.code;

  /** The agent's own member list, asked the way Hangar's push asks it (gateway token, loopback port). */
  async function agentMembers(): Promise<AgentMemberRow[]> {
    const row = await scene.h.core.agents.get(agentId);
    const res = await fetch(`http://127.0.0.1:${row.gatewayPort}/internal/members`, { headers: { authorization: `Bearer ${scene.h.core.agents.gatewayToken(row)}` } });
    return ((await res.json()) as { members: AgentMemberRow[] }).members;
  }
  async function agentCall(method: string, path: string, body?: unknown) {
    const row = await scene.h.core.agents.get(agentId);
    return fetch(`http://127.0.0.1:${row.gatewayPort}${path}`, {
      method,
      headers: { authorization: `Bearer ${scene.h.core.agents.gatewayToken(row)}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }
  const dbMembers = async () => (await asSystem(scene.h.core.db, (tx) => tx.workspaceMember.findMany({ where: { workspaceId: ws.id } })))
    .map((m) => `${m.userId}:${m.role}`).sort();
  const agentList = async () => (await agentMembers()).map((m) => `${m.userId}:${m.role}`).sort();
  const inSync = (what: string, timeoutMs = 60_000) => eventually(async () => {
    const [want, have] = [await dbMembers(), await agentList().catch(() => [])];
    return JSON.stringify(want) === JSON.stringify(have) ? have : null;
  }, what, timeoutMs);
  const chat = (who: Person, content: string, headers: Record<string, string> = {}) =>
    who.api('/api/chat', { body: { messages: [{ role: 'user', content }], agentId }, headers });

  beforeAll(async () => {
    [owner, mia, vic, otto] = await Promise.all([person(scene.h, 'Olivia'), person(scene.h, 'Mia'), person(scene.h, 'Vic'), person(scene.h, 'Otto')]);
    ws = await makeWorkspace(owner);
    await workspaceProvider(owner, ws.slug, scene.fake, 'sk-workspace-secret-9876');
    await join(owner, ws.slug, mia, 'member');
    await join(owner, ws.slug, vic, 'viewer');
  });
  afterAll(async () => {
    // A paused container cannot be removed cleanly: make sure it runs again.
    if (agentId) await scene.h.docker.getContainer(agentContainerName(agentId)).unpause().catch(() => undefined);
  });

  it('keeps the workspace provider key to itself: encrypted, returned to nobody, owners included', async () => {
    const listed = await (await owner.api(`/api/workspaces/${ws.slug}/providers`)).json();
    expect(listed).toEqual([expect.objectContaining({ name: 'fake', hasApiKey: true, apiKeyLast4: null })]);
    for (const who of [owner, mia, vic]) {
      for (const path of [`/api/workspaces/${ws.slug}/providers`, `/api/workspaces/${ws.slug}/agent-config`, `/api/workspaces/${ws.slug}`, `/api/workspaces/${ws.slug}/members`]) {
        const text = await (await who.api(path)).text();
        expect(text, path).not.toContain('sk-workspace-secret-9876');
        expect(text, path).not.toContain('9876');
        expect(text, path).not.toContain('enc:v1:');
      }
    }
    expect((await mia.api(`/api/workspaces/${ws.slug}/providers`)).status).toBe(403);
    const stored = await asSystem(scene.h.core.db, (tx) => tx.llmProvider.findFirstOrThrow({ where: { workspaceId: ws.id } }));
    expect(stored.apiKey).toMatch(/^enc:v1:/);
    expect(stored.userId).toBeNull();
  });

  it('is started by a member (not a viewer) and chatted with by members, who are named to it from Hangar alone', async () => {
    const refused = await vic.api(`/api/workspaces/${ws.slug}/agent/start`, { method: 'POST' });
    expect([refused.status, await code(refused)]).toEqual([403, 'workspace_role_required']);
    expect((await vic.api(`/api/workspaces/${ws.slug}/agent`)).status).toBe(404);
    const started = await mia.api(`/api/workspaces/${ws.slug}/agent/start`, { method: 'POST' });
    expect(started.status, await started.clone().text()).toBe(200);
    const view = await started.json();
    expect(view).toMatchObject({ status: 'running', workspaceId: ws.id, role: 'member' });
    agentId = view.id;
    scene.agentIds.push(agentId);
    expect((await vic.api(`/api/workspaces/${ws.slug}/agent`)).status).toBe(200);

    // A member chats, claiming to be someone else: the agent hears who it really is.
    const spoofed = {
      'x-hangar-user-id': 'evil-id',
      'x-hangar-user-name': 'Evil',
      'x-hangar-user-email': 'evil@attacker.test',
      'x-hangar-user-role': 'owner',
    };
    const res = await chat(mia, 'hello from mia', spoofed);
    expect(res.status, await res.clone().text()).toBe(200);
    expect((await res.json()).choices[0].message.content).toBe('echo: hello from mia');
    const sent = scene.fake.seen.filter((s) => userWords(s.body?.messages) === 'hello from mia').at(-1)!;
    const prompt = systemPrompt(sent.body);
    expect(prompt).toContain(`The person talking to you now is ${mia.name} <${mia.email}>, member of the workspace (Hangar user ${mia.id})`);
    expect(prompt).not.toMatch(/evil|Evil|attacker|owner of the workspace/);
    // The agent used the workspace's key, not anybody's own.
    expect(sent.authorization).toBe('Bearer sk-workspace-secret-9876');

    const byOwner = await chat(owner, 'hello from the owner');
    expect(byOwner.status).toBe(200);
    const ownerSent = scene.fake.seen.filter((s) => userWords(s.body?.messages) === 'hello from the owner').at(-1)!;
    expect(systemPrompt(ownerSent.body)).toContain(`${owner.name} <${owner.email}>, owner of the workspace (Hangar user ${owner.id})`);

    // Straight at the agent's port, identity headers without its token get nothing.
    const row = await scene.h.core.agents.get(agentId);
    const direct = await fetch(`http://127.0.0.1:${row.gatewayPort}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...spoofed },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'sneaky' }] }),
    });
    expect(direct.status).toBe(401);
    expect(scene.fake.seen.some((s) => userWords(s.body?.messages) === 'sneaky')).toBe(false);
  });

  it('lets viewers read the shared history but not chat, and outsiders nothing at all', async () => {
    const vicChat = await chat(vic, 'may I?');
    expect([vicChat.status, await code(vicChat)]).toEqual([403, 'workspace_role_required']);
    const history = await vic.api(`/api/chat/sessions?agentId=${agentId}`);
    expect(history.status).toBe(200);
    const sessions = (await history.json()).sessions as Array<{ id: string; userId: string; messages: Array<{ content: string }> }>;
    expect(sessions.find((s) => s.userId === mia.id)?.messages.map((m) => m.content)).toEqual(['hello from mia', 'echo: hello from mia']);
    expect(sessions.find((s) => s.userId === owner.id)).toBeDefined();

    expect((await chat(otto, 'let me in')).status).toBe(404);
    expect((await otto.api(`/api/chat/sessions?agentId=${agentId}`)).status).toBe(404);
    expect((await otto.api(`/api/workspaces/${ws.slug}/agent`)).status).toBe(404);
    // Their own chat without an agentId goes to their own agent, never this one.
    expect(scene.fake.seen.some((s) => userWords(s.body?.messages) === 'let me in')).toBe(false);
  });

  it('provisions every member into the agent, and pushes role changes and removals', async () => {
    await inSync('the first members in the agent');
    const provisioned = await eventually(async () => {
      const list = (await (await owner.api(`/api/workspaces/${ws.slug}/members`)).json()) as Array<{ provisioned: boolean }>;
      return list.every((m) => m.provisioned) ? list : null;
    }, 'every member marked provisioned', 30_000);
    expect(provisioned).toHaveLength(3);
    expect((await agentMembers()).find((m) => m.userId === mia.id)).toMatchObject({ email: mia.email, displayName: mia.name, role: 'member' });

    expect((await owner.api(`/api/workspaces/${ws.slug}/members/${vic.id}`, { method: 'PUT', body: { role: 'member' } })).status).toBe(200);
    await inSync('the role change in the agent');
    expect((await owner.api(`/api/workspaces/${ws.slug}/members/${vic.id}`, { method: 'DELETE' })).status).toBe(204);
    await inSync('the removal in the agent');
    expect((await agentList()).some((m) => m.startsWith(vic.id))).toBe(false);
    // Removed: the agent is gone for them.
    expect((await chat(vic, 'still here?')).status).toBe(404);
  });

  it('retries while the agent is down during an add, and provisions the member when it is back', async () => {
    const nia = await person(scene.h, 'Nia');
    const container = scene.h.docker.getContainer(agentContainerName(agentId));
    await container.pause();
    try {
      await join(owner, ws.slug, nia, 'member');
      const stuck = await eventually(async () => {
        const v = await (await owner.api(`/api/workspaces/${ws.slug}/agent`)).json();
        return v.members.sync?.status === 'retrying' ? v : null;
      }, 'the push to be retrying', 90_000);
      expect(stuck.members.provisioned).toBeLessThan(stuck.members.total);
      const listed = (await (await owner.api(`/api/workspaces/${ws.slug}/members`)).json()) as Array<{ userId: string; provisioned: boolean }>;
      expect(listed.find((m) => m.userId === nia.id)?.provisioned).toBe(false);
    } finally {
      await container.unpause();
    }
    await inSync('the member added while the agent was down', 120_000);
    await eventually(async () => {
      const list = (await (await owner.api(`/api/workspaces/${ws.slug}/members`)).json()) as Array<{ userId: string; provisioned: boolean }>;
      return list.find((m) => m.userId === nia.id)?.provisioned;
    }, 'the new member marked provisioned', 30_000);
  });

  it('repairs drift in the agent\'s list when the schedule compares it', async () => {
    await inSync('a settled list before the drift');
    expect((await agentCall('PUT', '/internal/members/ghost-user', { role: 'owner', email: 'ghost@x.test', displayName: 'Ghost' })).status).toBe(200);
    expect((await agentCall('DELETE', `/internal/members/${mia.id}`)).status).toBe(204);
    expect((await agentCall('PUT', `/internal/members/${owner.id}`, { role: 'viewer', email: owner.email, displayName: owner.name })).status).toBe(200);
    expect(await agentList()).not.toEqual(await dbMembers());
    await scene.h.core.temporal.schedules.trigger(MEMBER_DRIFT_SCHEDULE_ID);
    const repaired = await inSync('the drift repaired');
    expect(repaired.some((m) => m.startsWith('ghost-user'))).toBe(false);
    expect(repaired).toContain(`${owner.id}:owner`);
    expect(repaired).toContain(`${mia.id}:member`);
  });

  it('pushes the members who joined while it was stopped when a chat starts it again', async () => {
    await inSync('a settled list before the stop');
    const stopped = await mia.api(`/api/workspaces/${ws.slug}/agent/stop`, { method: 'POST' });
    expect(stopped.status, await stopped.clone().text()).toBe(200);
    expect((await stopped.json()).status).toBe('stopped');
    const late = await person(scene.h, 'Lea');
    await join(owner, ws.slug, late, 'member');
    // Nobody pressed Start: the chat starts it, and with it the push (well before the drift schedule's next run).
    const res = await chat(late, 'hello, I am new');
    expect(res.status, await res.clone().text()).toBe(200);
    const after = await inSync('the member who joined while it was stopped', 45_000);
    expect(after).toContain(`${late.id}:member`);
  });
});
