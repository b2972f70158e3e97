import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { agentWorkflowId } from '../../core/contracts/agent.contract.ts';
import { startTemporalDevServer, type RunningTemporal } from '../../core/runtime/temporal-dev.runtime.ts';
import { stateQuery } from '../../workflows/agent-lifecycle.workflow.ts';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import { createTestUser, removeAgentsFromDocker, startHangar, type Hangar } from '../support/hangar.harness.ts';
import { freePort } from '../support/ports.ts';
import { chat, giveProvider } from '../support/scenario.ts';

// A lifecycle lives as long as its agent, so it must continue-as-new when the
// server suggests it, carrying its state. A server of our own suggests it early.
describe('agent lifecycle continue-as-new', () => {
  let temporal: RunningTemporal;
  let h: Hangar;
  let fake: Awaited<ReturnType<typeof startFakeOpenAI>>;
  const agentIds: string[] = [];

  beforeAll(async () => {
    temporal = await startTemporalDevServer({
      port: await freePort(),
      headless: true,
      logFile: path.join(inject('stack').dataDir, 'temporal-can.log'),
      dynamicConfig: ['limit.historyCount.suggestContinueAsNew=30'],
    });
    [h, fake] = await Promise.all([startHangar({ TEMPORAL_ADDRESS: temporal.address }), startFakeOpenAI()]);
  });
  afterAll(async () => {
    if (h) await removeAgentsFromDocker(h.docker, agentIds);
    await h?.stop();
    await temporal?.stop();
    await fake?.close();
  });

  it('rolls over to a new run and keeps the agent\'s state', async () => {
    const user = await createTestUser(h);
    await giveProvider(user, fake);
    const first = await (await user.api('/api/me/agent/start', { method: 'POST' })).json();
    agentIds.push(first.id);
    const handle = h.temporal.workflow.getHandle(agentWorkflowId(first.id));
    const firstRun = (await handle.describe()).runId;
    for (let i = 0; i < 4; i++) {
      expect((await user.api('/api/me/agent/stop', { method: 'POST' })).status).toBe(200);
      expect((await user.api('/api/me/agent/start', { method: 'POST' })).status).toBe(200);
    }
    const desc = await handle.describe();
    expect(desc.runId).not.toBe(firstRun);
    const state = await handle.query(stateQuery);
    expect(state.status).toBe('running');
    expect(state.generation).toBe(5);
    expect((await chat(user, 'still me')).text).toBe('echo: still me');
  });
});
