import { describe, expect, it } from 'vitest';
import { agentWorkflowId } from '../../core/contracts/agent.contract.ts';
import { stateQuery } from '../../core/contracts/agent.contract.ts';
import { createTestUser, useScene } from '../support/hangar.harness.ts';
import { chat, giveProvider } from '../support/scenario.ts';

// A lifecycle lives as long as its agent, so it must continue-as-new when the
// server suggests it, carrying its state. A server of our own suggests it early.
describe('agent lifecycle continue-as-new', () => {
  const scene = useScene({ ownTemporal: { dynamicConfig: ['limit.historyCount.suggestContinueAsNew=30'] } });

  it('rolls over to a new run and keeps the agent\'s state', async () => {
    const user = await createTestUser(scene.h);
    await giveProvider(user, scene.fake);
    const first = await (await user.api('/api/me/agent/start', { method: 'POST' })).json();
    scene.agentIds.push(first.id);
    const handle = scene.h.temporal.workflow.getHandle(agentWorkflowId(first.id));
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
