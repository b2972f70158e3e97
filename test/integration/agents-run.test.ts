import { beforeAll, describe, expect, it } from 'vitest';
import { asSystem } from '../../core/db.ts';
import { createTestUser, useScene, type TestUser } from '../support/hangar.harness.ts';

// The walking skeleton end to end: users, providers, a workflow-started
// container per user, chat through the proxy, and isolation between users.
describe('agents run', () => {
  const scene = useScene();
  let alice: TestUser;
  let bob: TestUser;

  beforeAll(async () => {
    [alice, bob] = await Promise.all([createTestUser(scene.h), createTestUser(scene.h)]);
  });

  async function setUpProvider(user: TestUser, key: string) {
    const res = await user.api('/api/me/providers', {
      body: { name: 'fake', displayName: 'Fake', type: 'custom', baseUrl: scene.fake.agentBaseUrl, apiKey: key, models: [{ id: 'fake-model' }] },
    });
    expect(res.status).toBe(201);
    const provider = await res.json();
    expect(provider).not.toHaveProperty('apiKey');
    expect(provider.hasApiKey).toBe(true);
    expect(provider.apiKeyLast4).toBe(key.slice(-4));
    const cfg = await user.api('/api/me/agent-config', {
      method: 'PUT',
      body: { primaryModel: 'fake/fake-model', fallbackModels: [], personality: null, providerId: provider.id },
    });
    expect(cfg.status).toBe(200);
    expect((await cfg.json()).restart).toBe('not_running');
    return provider;
  }

  it('starts one agent per user and chats through the proxy, plain and streamed', async () => {
    const aliceProvider = await setUpProvider(alice, 'sk-alice-0001');
    await setUpProvider(bob, 'sk-bob-0002');

    const test = await alice.api(`/api/me/providers/${aliceProvider.id}/test`, { method: 'POST' });
    expect(await test.json()).toMatchObject({ ok: true });

    expect((await alice.api('/api/me/agent')).status).toBe(404);
    const [a, b] = await Promise.all([
      alice.api('/api/me/agent/start', { method: 'POST' }),
      bob.api('/api/me/agent/start', { method: 'POST' }),
    ]);
    expect(a.status, await a.clone().text()).toBe(200);
    expect(b.status, await b.clone().text()).toBe(200);
    const [agentA, agentB] = [await a.json(), await b.json()];
    scene.agentIds.push(agentA.id, agentB.id);
    expect(agentA.status).toBe('running');
    expect(agentA.workflowId).toBe(`agent/${agentA.id}`);
    expect(agentA.id).not.toBe(agentB.id);

    const info = await scene.h.docker.getContainer(`hangar-agent-${agentA.id}`).inspect();
    expect(info.State.Running).toBe(true);
    expect(info.Config.User).toBe('10001:10001');
    expect(info.HostConfig.CapDrop).toEqual(['ALL']);
    expect(info.HostConfig.SecurityOpt).toContain('no-new-privileges');
    expect(info.HostConfig.PortBindings['18789/tcp'][0].HostIp).toBe('127.0.0.1');
    expect(info.HostConfig.Memory).toBeGreaterThan(0);
    expect(info.HostConfig.PidsLimit).toBeGreaterThan(0);

    const plain = await alice.api('/api/chat', { body: { messages: [{ role: 'user', content: 'hello from alice' }] } });
    expect(plain.status).toBe(200);
    const answer = await plain.json();
    expect(answer.choices[0].message.content).toBe('echo: hello from alice');
    const upstream = scene.fake.seen.find((s) => s.body?.messages?.some((m) => m.content === 'hello from alice'));
    expect(upstream?.authorization).toBe('Bearer sk-alice-0001');
    expect(upstream?.body?.model).toBe('fake-model');

    const bobPlain = await bob.api('/api/chat', { body: { messages: [{ role: 'user', content: 'hi from bob' }] } });
    expect((await bobPlain.json()).choices[0].message.content).toBe('echo: hi from bob');
    expect(scene.fake.seen.find((s) => s.body?.messages?.some((m) => m.content === 'hi from bob'))?.authorization).toBe('Bearer sk-bob-0002');

    const streamed = await alice.api('/api/chat', { body: { messages: [{ role: 'user', content: 'stream these words please' }], stream: true } });
    expect(streamed.status).toBe(200);
    expect(streamed.headers.get('content-type')).toContain('text/event-stream');
    const reader = streamed.body!.getReader();
    let chunks = 0;
    let text = '';
    for (let i = 0; i < 1000; i++) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks++;
      text += new TextDecoder().decode(value);
    }
    expect(chunks).toBeGreaterThan(1);
    const content = text
      .split('\n')
      .filter((l) => l.startsWith('data: ') && !l.includes('[DONE]'))
      .map((l) => JSON.parse(l.slice(6)).choices[0].delta.content)
      .join('');
    expect(content).toBe('echo: stream these words please');

    const sessions = await (await alice.api('/api/chat/sessions')).json();
    expect(JSON.stringify(sessions)).toContain('hello from alice');
    expect(JSON.stringify(sessions)).not.toContain('hi from bob');
  });

  it('keeps users apart: another user\'s agent, providers and config are 404', async () => {
    const bobAgent = await scene.h.core.agents.findOwned('user', bob.id);
    const bobProviders = await scene.h.core.providers.list(bob.id);
    expect(bobAgent && bobProviders.length).toBeTruthy();

    const asAlice = [
      alice.api('/api/chat', { body: { messages: [{ role: 'user', content: 'x' }], agentId: bobAgent!.id } }),
      alice.api(`/api/me/providers/${bobProviders[0].id}`, { method: 'PATCH', body: { displayName: 'pwned' } }),
      alice.api(`/api/me/providers/${bobProviders[0].id}`, { method: 'DELETE' }),
      alice.api(`/api/me/providers/${bobProviders[0].id}/test`, { method: 'POST' }),
    ];
    for (const res of await Promise.all(asAlice)) {
      expect(res.status).toBe(404);
      expect((await res.json()).error.code).toBeTruthy();
    }
    const put = await alice.api('/api/me/agent-config', {
      method: 'PUT',
      body: { primaryModel: null, fallbackModels: [], personality: null, providerId: bobProviders[0].id },
    });
    expect(put.status).toBe(400);
    const stillBob = await scene.h.core.providers.list(bob.id);
    expect(stillBob[0].displayName).toBe('Fake');
    const aliceList = await (await alice.api('/api/me/providers')).json();
    expect(aliceList.map((p: { id: string }) => p.id)).not.toContain(bobProviders[0].id);
  });

  it('the config endpoint answers only a fresh bootstrap token of that agent, once', async () => {
    const a = (await scene.h.core.agents.findOwned('user', alice.id))!;
    const b = (await scene.h.core.agents.findOwned('user', bob.id))!;
    const url = (agentId: string) => `${scene.h.url}/api/internal/agent-config/user/${agentId}`;
    const envToken = async (agentId: string) => {
      const env = (await scene.h.docker.getContainer(`hangar-agent-${agentId}`).inspect()).Config.Env ?? [];
      return env.find((e) => e.startsWith('HANGAR_GATEWAY_TOKEN='))!.slice('HANGAR_GATEWAY_TOKEN='.length);
    };
    const [spentA, spentB] = [await envToken(a.id), await envToken(b.id)];
    const refused = [
      fetch(url(a.id)),
      // Each container's own bootstrap token was spent by its boot.
      fetch(url(a.id), { headers: { authorization: `Bearer ${spentA}` } }),
      fetch(url(a.id), { headers: { authorization: `Bearer ${spentB}` } }),
      // The gateway token is for the proxy only.
      fetch(url(a.id), { headers: { authorization: `Bearer ${scene.h.core.agents.gatewayToken(a)}` } }),
      fetch(url(a.id), { headers: { authorization: `Bearer ${alice.token}` } }),
      fetch(url(a.id), { headers: { authorization: 'Bearer ' } }),
      fetch(`${scene.h.url}/api/internal/agent-config/workspace/${a.id}`, { headers: { authorization: `Bearer ${spentA}` } }),
      fetch(url('no-such-agent'), { headers: { authorization: `Bearer ${spentA}` } }),
    ];
    for (const res of await Promise.all(refused)) {
      expect(res.status).toBe(401);
      const body = await res.text();
      expect(body).not.toContain('sk-alice');
      expect(body).not.toContain(a.id);
    }
  });

  it('20 concurrent starts for one user make exactly one container', async () => {
    const carol = await createTestUser(scene.h);
    const results = await Promise.all(Array.from({ length: 20 }, () => carol.api('/api/me/agent/start', { method: 'POST' })));
    const statuses = results.map((r) => r.status);
    expect(statuses.every((s) => s === 200)).toBe(true);
    const ids = new Set(await Promise.all(results.map(async (r) => (await r.json()).id)));
    expect(ids.size).toBe(1);
    const [agentId] = [...ids] as string[];
    scene.agentIds.push(agentId);
    const list = await scene.h.docker.listContainers({ all: true, filters: { label: [`dev.hangar.agent-id=${agentId}`] } });
    expect(list).toHaveLength(1);
    expect(await asSystem(scene.h.core.db, (tx) => tx.agent.count({ where: { ownerKind: 'user', ownerId: carol.id } }))).toBe(1);
  });

  it('20 concurrent ensureRunning updates straight to Temporal (no API in between) make one container', async () => {
    const dave = await createTestUser(scene.h);
    await setUpProvider(dave, 'sk-dave-0004');
    const agent = await scene.h.core.agents.getOrCreate('user', dave.id);
    scene.agentIds.push(agent.id);
    const states = await Promise.all(
      Array.from({ length: 20 }, () =>
        scene.h.core.temporal.agents.ensureRunning(agent),
      ),
    );
    expect(states.every((s) => s.status === 'running')).toBe(true);
    expect(new Set(states.map((s) => s.containerId)).size).toBe(1);
    const list = await scene.h.docker.listContainers({ all: true, filters: { label: [`dev.hangar.agent-id=${agent.id}`] } });
    expect(list).toHaveLength(1);
  });
});
