import { describe, expect, it } from 'vitest';
import { createTestUser, eventually, useScene } from '../support/hangar.harness.ts';
import { chat, giveProvider } from '../support/scenario.ts';

// Durability is the product: a worker SIGKILLed in the middle of a start comes
// back and finishes it, with exactly one container.
describe('durability', () => {
  const scene = useScene({});

  it('a worker killed mid-start ends with one healthy running agent', async () => {
    // Kill the worker once the container exists but before the agent is healthy.
    // The window is a few hundred milliseconds; if a fast machine closes it
    // before we look, try again with a new user (bounded).
    for (let attempt = 1; attempt <= 3; attempt++) {
      const user = await createTestUser(scene.h);
      await giveProvider(user, scene.fake);
      const started = user.api('/api/me/agent/start', { method: 'POST' });
      const agent = await eventually(() => scene.h.core.agents.findOwned('user', user.id), 'the agent row', 30_000);
      scene.agentIds.push(agent.id);
      let created = false;
      for (let i = 0; i < 1500 && !created; i++) {
        const list = await scene.h.docker.listContainers({ all: true, filters: { label: [`dev.hangar.agent-id=${agent.id}`] } });
        created = list.length > 0;
        if (!created) await new Promise((r) => setTimeout(r, 20));
      }
      expect(created).toBe(true);
      await scene.h.worker.kill();
      const midway = (await scene.h.core.agents.get(agent.id)).status !== 'running';
      await new Promise((r) => setTimeout(r, 1000));
      await scene.h.restartWorker();

      const res = await started;
      expect(res.status).toBe(200);
      expect((await res.json()).status).toBe('running');
      const list = await scene.h.docker.listContainers({ all: true, filters: { label: [`dev.hangar.agent-id=${agent.id}`] } });
      expect(list).toHaveLength(1);
      expect(list[0].State).toBe('running');
      expect((await chat(user, 'after the crash')).text).toBe('echo: after the crash');
      if (midway) return;
    }
    throw new Error('never caught a start in the middle in 3 attempts');
  });
});
