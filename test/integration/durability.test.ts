import { describe, expect, it } from 'vitest';
import { createTestUser, eventually, useScene } from '../support/hangar.harness.ts';
import { chat, giveProvider } from '../support/scenario.ts';

// Durability is the product: a worker SIGKILLed in the middle of a start comes
// back and finishes it, with exactly one container.
describe('durability', () => {
  const scene = useScene({});

  it('a worker killed mid-start ends with one healthy running agent', async () => {
    const user = await createTestUser(scene.h);
    await giveProvider(user, scene.fake);
    const started = user.api('/api/me/agent/start', { method: 'POST' });

    // The middle of the start: the container exists but the agent is not yet healthy.
    const agent = await eventually(async () => {
      const row = await scene.h.core.agents.findOwned('user', user.id);
      if (!row) return null;
      const list = await scene.h.docker.listContainers({ all: true, filters: { label: [`dev.hangar.agent-id=${row.id}`] } });
      return list.length > 0 ? row : null;
    }, 'the container to be created', 60_000);
    scene.agentIds.push(agent.id);
    expect((await scene.h.core.agents.get(agent.id)).status).not.toBe('running');
    await scene.h.worker.kill();

    await new Promise((r) => setTimeout(r, 1000));
    await scene.h.restartWorker();

    const res = await started;
    expect(res.status).toBe(200);
    expect((await res.json()).status).toBe('running');
    const list = await scene.h.docker.listContainers({ all: true, filters: { label: [`dev.hangar.agent-id=${agent.id}`] } });
    expect(list).toHaveLength(1);
    expect(list[0].State).toBe('running');
    expect((await chat(user, 'after the crash')).text).toBe('echo: after the crash');
  });
});
