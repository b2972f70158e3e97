import { beforeAll, describe, expect, it } from 'vitest';
import { agentContainerName } from '../../core/contracts/agent.contract.ts';
import { asSystem } from '../../core/db.ts';
import { createTestUser, useScene, type TestUser } from '../support/hangar.harness.ts';
import { chat, giveProvider } from '../support/scenario.ts';

// Per-start gateway tokens on the real stack: what `docker inspect` shows is a
// bootstrap token already spent by the agent's own config fetch, refused by
// the config endpoint and by the agent; every start makes a new container with
// a new bootstrap token and a new gateway token, and the old ones stop working.

describe('per-start gateway tokens', () => {
  const scene = useScene();
  let user: TestUser;
  let agentId: string;

  const configUrl = (id: string) => `${scene.h.url}/api/internal/agent-config/user/${id}`;
  const row = () => scene.h.core.agents.get(agentId);
  const inspect = () => scene.h.docker.getContainer(agentContainerName(agentId)).inspect();
  /** The token a `docker inspect` of the agent's container shows. */
  async function inspectedToken(): Promise<string> {
    const env = (await inspect()).Config.Env ?? [];
    const line = env.find((e) => e.startsWith('HANGAR_GATEWAY_TOKEN='));
    expect(line, 'the container env carries the bootstrap token').toBeTruthy();
    return line!.slice('HANGAR_GATEWAY_TOKEN='.length);
  }
  /** Straight to the agent container, as someone who got hold of a token would. */
  async function agentAnswers(token: string): Promise<number> {
    const port = (await row()).gatewayPort;
    const res = await fetch(`http://127.0.0.1:${port}/v1/info`, { headers: { authorization: `Bearer ${token}` } });
    await res.arrayBuffer();
    return res.status;
  }
  async function configAnswers(id: string, token: string): Promise<number> {
    const res = await fetch(configUrl(id), { headers: { authorization: `Bearer ${token}` } });
    const body = await res.text();
    if (res.status !== 200) expect(JSON.parse(body).error.code).toBe('invalid_agent_token');
    return res.status;
  }

  beforeAll(async () => {
    user = await createTestUser(scene.h);
    await giveProvider(user, scene.fake);
    const res = await user.api('/api/me/agent/start', { method: 'POST' });
    expect(res.status, await res.clone().text()).toBe(200);
    agentId = (await res.json()).id;
    scene.agentIds.push(agentId);
  });

  it('docker inspect shows only a spent token: the config endpoint and the agent both refuse it', async () => {
    const shown = await inspectedToken();
    const gateway = scene.h.core.agents.gatewayToken(await row());
    expect(shown).not.toBe(gateway);
    expect(await configAnswers(agentId, shown)).toBe(401);
    expect(await agentAnswers(shown)).toBe(401);
    // The token Hangar's proxy holds works, and chat goes through.
    expect(await agentAnswers(gateway)).toBe(200);
    expect((await chat(user, 'hello after the exchange')).text).toBe('echo: hello after the exchange');
    expect((await row()).bootstrapTokenHash).toBeNull();
  });

  it('a restart makes a new container with new tokens; the old gateway token stops working', async () => {
    const before = { container: (await inspect()).Id, shown: await inspectedToken(), gateway: scene.h.core.agents.gatewayToken(await row()) };
    const res = await user.api('/api/me/agent/restart', { method: 'POST' });
    expect(res.status, await res.clone().text()).toBe(200);
    const after = { container: (await inspect()).Id, shown: await inspectedToken(), gateway: scene.h.core.agents.gatewayToken(await row()) };
    expect(after.container).not.toBe(before.container);
    expect(after.shown).not.toBe(before.shown);
    expect(after.gateway).not.toBe(before.gateway);
    expect(await agentAnswers(before.gateway)).toBe(401);
    expect(await agentAnswers(after.shown)).toBe(401);
    expect(await agentAnswers(after.gateway)).toBe(200);
    for (const token of [before.shown, after.shown, before.gateway, after.gateway]) expect(await configAnswers(agentId, token)).toBe(401);
    expect((await chat(user, 'hello after the restart')).text).toBe('echo: hello after the restart');
  });

  it('a bootstrap token is exchanged once (a replay, a racing twin, an older or expired one: 401)', async () => {
    // An agent that is not running: its tokens are minted here as a start would.
    const other = await createTestUser(scene.h);
    await giveProvider(other, scene.fake, 'sk-other-0042');
    const agent = await scene.h.core.agents.getOrCreate('user', other.id);
    const mint = async () => scene.h.core.keyring.decrypt((await scene.h.core.agents.containerSpec(agent.id, 'start')).secretEnv.HANGAR_GATEWAY_TOKEN);

    const token = await mint();
    const [first, second] = await Promise.all([0, 1].map(() => fetch(configUrl(agent.id), { headers: { authorization: `Bearer ${token}` } })));
    const answers = [first, second].sort((a, b) => a.status - b.status);
    expect(answers.map((r) => r.status)).toEqual([200, 401]);
    expect(answers[0].headers.get('cache-control')).toBe('no-store');
    const config = await answers[0].json();
    await answers[1].arrayBuffer();
    const sealed = await scene.h.core.agents.get(agent.id);
    expect(config.gateway.auth).toEqual({ mode: 'token', token: scene.h.core.agents.gatewayToken(sealed) });
    expect(config.models.providers.fake.apiKey).toBe('sk-other-0042');
    expect(await configAnswers(agent.id, token)).toBe(401);

    // Only the newest start's token counts.
    const older = await mint();
    const newer = await mint();
    expect(await configAnswers(agent.id, older)).toBe(401);
    // Another agent's valid token is no key to this one.
    expect(await configAnswers(agentId, newer)).toBe(401);
    expect(await configAnswers(agent.id, newer)).toBe(200);

    const expired = await mint();
    await asSystem(scene.h.core.db, (tx) => tx.agent.update({ where: { id: agent.id }, data: { bootstrapExpiresAt: new Date(Date.now() - 1000) } }));
    expect(await configAnswers(agent.id, expired)).toBe(401);
  });
});
