import { describe, expect, it } from 'vitest';
import { createTestUser, useScene } from '../support/hangar.harness.ts';
import { chat, giveProvider } from '../support/scenario.ts';

// Chat to a running agent routes from the database: it must keep answering
// while the workflow service is down. Only starting or changing needs Temporal.
// This file runs its own Temporal server so stopping it harms no other test.
describe('with Temporal down', () => {
  const scene = useScene({ ownTemporal: {} });

  it('an already running agent still answers chat; starting another says 503', async () => {
    const user = await createTestUser(scene.h);
    await giveProvider(user, scene.fake);
    const res = await user.api('/api/me/agent/start', { method: 'POST' });
    expect(res.status).toBe(200);
    scene.agentIds.push((await res.json()).id);

    await scene.h.worker.stop();
    await scene.temporal!.stop();

    expect((await chat(user, 'still there?')).text).toBe('echo: still there?');
    const history = await user.api('/api/chat/sessions');
    expect(history.status).toBe(200);

    const other = await createTestUser(scene.h);
    await giveProvider(other, scene.fake);
    const refused = await other.api('/api/me/agent/start', { method: 'POST' });
    expect(refused.status).toBe(503);
    expect((await refused.json()).error.code).toBe('temporal_unavailable');
    const ready = await fetch(`${scene.h.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'unavailable' });
    // Which dependency is down is for admins.
    const detailed = await (await createTestUser(scene.h, 'admin')).api('/readyz');
    expect(detailed.status).toBe(503);
    expect((await detailed.json()).checks.temporal).toMatch(/^down/);
  });
});
