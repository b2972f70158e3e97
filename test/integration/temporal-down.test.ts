import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { startTemporalDevServer, type RunningTemporal } from '../../core/runtime/temporal-dev.runtime.ts';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import { createTestUser, removeAgentsFromDocker, startHangar, type Hangar } from '../support/hangar.harness.ts';
import { freePort } from '../support/ports.ts';
import { chat, giveProvider } from '../support/scenario.ts';

// Chat to a running agent routes from the database: it must keep answering
// while the workflow service is down. Only starting or changing needs Temporal.
// This file runs its own Temporal server so stopping it harms no other test.
describe('with Temporal down', () => {
  let temporal: RunningTemporal;
  let h: Hangar;
  let fake: Awaited<ReturnType<typeof startFakeOpenAI>>;
  const agentIds: string[] = [];

  beforeAll(async () => {
    temporal = await startTemporalDevServer({
      port: await freePort(),
      headless: true,
      logFile: path.join(inject('stack').dataDir, 'temporal-down.log'),
    });
    [h, fake] = await Promise.all([startHangar({ TEMPORAL_ADDRESS: temporal.address }), startFakeOpenAI()]);
  });
  afterAll(async () => {
    if (h) await removeAgentsFromDocker(h.docker, agentIds);
    await h?.stop();
    await temporal?.stop();
    await fake?.close();
  });

  it('an already running agent still answers chat; starting another says 503', async () => {
    const user = await createTestUser(h);
    await giveProvider(user, fake);
    const res = await user.api('/api/me/agent/start', { method: 'POST' });
    expect(res.status).toBe(200);
    agentIds.push((await res.json()).id);

    await h.worker.stop();
    await temporal.stop();

    expect((await chat(user, 'still there?')).text).toBe('echo: still there?');
    const history = await user.api('/api/chat/sessions');
    expect(history.status).toBe(200);

    const other = await createTestUser(h);
    await giveProvider(other, fake);
    const refused = await other.api('/api/me/agent/start', { method: 'POST' });
    expect(refused.status).toBe(503);
    expect((await refused.json()).error.code).toBe('temporal_unavailable');
    const ready = await fetch(`${h.url}/readyz`);
    expect(ready.status).toBe(503);
    expect((await ready.json()).checks.temporal).toMatch(/^down/);
  });
});
