import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import { createTestUser, eventually, removeAgentsFromDocker, startHangar, type Hangar } from '../support/hangar.harness.ts';
import { chat, giveProvider } from '../support/scenario.ts';

// Durability is the product: a worker SIGKILLed in the middle of a start comes
// back and finishes it, with exactly one container.
describe('durability', () => {
  let h: Hangar;
  let fake: Awaited<ReturnType<typeof startFakeOpenAI>>;
  const agentIds: string[] = [];

  beforeAll(async () => {
    [h, fake] = await Promise.all([startHangar(), startFakeOpenAI()]);
  });
  afterAll(async () => {
    if (h) await removeAgentsFromDocker(h.docker, agentIds);
    await h?.stop();
    await fake?.close();
  });

  it('a worker killed mid-start ends with one healthy running agent', async () => {
    const user = await createTestUser(h);
    await giveProvider(user, fake);
    const started = user.api('/api/me/agent/start', { method: 'POST' });

    // The middle of the start: the container exists but the agent is not yet healthy.
    const agent = await eventually(async () => {
      const row = await h.core.agents.findOwned('user', user.id);
      if (!row) return null;
      const list = await h.docker.listContainers({ all: true, filters: { label: [`dev.hangar.agent-id=${row.id}`] } });
      return list.length > 0 ? row : null;
    }, 'the container to be created', 60_000);
    agentIds.push(agent.id);
    expect((await h.core.agents.get(agent.id)).status).not.toBe('running');
    await h.worker.kill();

    await new Promise((r) => setTimeout(r, 1000));
    await h.restartWorker();

    const res = await started;
    expect(res.status).toBe(200);
    expect((await res.json()).status).toBe('running');
    const list = await h.docker.listContainers({ all: true, filters: { label: [`dev.hangar.agent-id=${agent.id}`] } });
    expect(list).toHaveLength(1);
    expect(list[0].State).toBe('running');
    expect((await chat(user, 'after the crash')).text).toBe('echo: after the crash');
  });
});
