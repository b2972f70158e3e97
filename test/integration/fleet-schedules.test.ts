import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { agentWorkflowId, FLEET_RECONCILE_SCHEDULE_ID, IDLE_REAPER_SCHEDULE_ID } from '../../core/contracts/agent.contract.ts';
import { createTestUser, eventually, type TestUser, useScene } from '../support/hangar.harness.ts';
import { chat, giveProvider, startedAgent } from '../support/scenario.ts';

// The schedules registered by the worker, triggered by hand so the test does
// not wait for the clock: the reaper, and reconciliation both ways.
describe('idle reaper and fleet reconcile', () => {
  const scene = useScene({});

  const runningAgent = () => startedAgent(scene);

  const trigger = (id: string) => scene.h.core.temporal.schedules.trigger(id);

  /** Triggers a schedule now (even if a run is in flight) and returns that run's result. */
  async function triggerAndWait(id: string): Promise<unknown> {
    const run = await trigger(id);
    return scene.h.temporal.workflow.getHandle(run.workflowId, run.runId).result();
  }

  it('registers both schedules', async () => {
    for (const id of [IDLE_REAPER_SCHEDULE_ID, FLEET_RECONCILE_SCHEDULE_ID]) {
      const d = await scene.h.temporal.schedule.getHandle(id).describe();
      expect(d.scheduleId).toBe(id);
    }
  });

  it('two triggers back to back start two runs, though Temporal drops an action in the same second as another', async () => {
    // The second trigger usually lands in the first one's second, where
    // Temporal starts nothing (temporalio/temporal#3614); the port tries again.
    const first = await trigger(IDLE_REAPER_SCHEDULE_ID);
    const second = await trigger(IDLE_REAPER_SCHEDULE_ID);
    expect(second.workflowId).not.toBe(first.workflowId);
    for (const run of [first, second]) {
      expect(await scene.h.temporal.workflow.getHandle(run.workflowId, run.runId).result()).toMatchObject({ asked: expect.any(Number) });
    }
  });

  it('stops an agent idle past its timeout; chatting again starts it with its history intact', async () => {
    const { user, agentId } = await runningAgent();
    expect((await chat(user, 'remember me')).text).toBe('echo: remember me');
    const patch = await user.api('/api/me/agent', { method: 'PATCH', body: { idleTimeoutMin: 1 } });
    expect((await patch.json()).idleTimeoutMin).toBe(1);

    // A busy agent is left alone: once the reaper's run is over, the agent
    // still runs and its lifecycle was not even asked. (The lifecycle's own
    // re-check, for a chat that lands meanwhile, is proven in the workflow tier.)
    expect(await triggerAndWait(IDLE_REAPER_SCHEDULE_ID)).toMatchObject({ asked: expect.any(Number) });
    expect((await scene.h.core.agents.get(agentId)).status).toBe('running');
    const lifecycle = await scene.h.temporal.workflow.getHandle(agentWorkflowId(agentId)).fetchHistory();
    expect(lifecycle.events?.filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'reapIfIdle')).toEqual([]);

    await scene.h.core.agents.touch(agentId, new Date(Date.now() - 5 * 60_000));
    await trigger(IDLE_REAPER_SCHEDULE_ID);
    await eventually(async () => (await scene.h.core.agents.get(agentId)).status === 'stopped', 'the reaper to stop the agent');
    const info = await scene.h.docker.getContainer(`hangar-agent-${agentId}`).inspect();
    expect(info.State.Running).toBe(false);

    expect((await chat(user, 'back again')).text).toBe('echo: back again');
    expect((await scene.h.core.agents.get(agentId)).status).toBe('running');
    const sessions = JSON.stringify(await (await user.api('/api/chat/sessions')).json());
    expect(sessions).toContain('remember me');
    expect(sessions).toContain('back again');
  });

  it('asks many idle lifecycles in one batch operation: each stops its agent; a retried call with the same job id is a no-op', async () => {
    // What the reaper's activity does when more than a handful are idle (the
    // one-by-one path is the test above): one call, the server signals each.
    const agents = [await runningAgent(), await runningAgent()];
    for (const { user, agentId } of agents) {
      expect((await user.api('/api/me/agent', { method: 'PATCH', body: { idleTimeoutMin: 1 } })).status).toBe(200);
      await scene.h.core.agents.touch(agentId, new Date(Date.now() - 5 * 60_000));
    }
    const ids = [...agents.map((a) => a.agentId), randomUUID()]; // the last has no lifecycle: skipped, not an error
    const jobId = `test-idle-reaper-${randomUUID()}`;
    expect(await scene.h.core.temporal.agents.reapIfIdleBatch(ids, jobId)).toBe(true);
    for (const { agentId } of agents) {
      await eventually(async () => (await scene.h.core.agents.get(agentId)).status === 'stopped', `the batch to stop agent ${agentId}`, 60_000);
    }
    expect(await scene.h.core.temporal.agents.reapIfIdleBatch(ids, jobId)).toBe(true);
  });

  it('notices a container removed behind its back and fixes the row; restarts a crashed one', async () => {
    const gone = await runningAgent();
    const crashed = await runningAgent();
    await scene.h.docker.getContainer(`hangar-agent-${gone.agentId}`).remove({ force: true });
    await scene.h.docker.getContainer(`hangar-agent-${crashed.agentId}`).kill();

    await trigger(FLEET_RECONCILE_SCHEDULE_ID);
    const row = await eventually(async () => {
      const r = await scene.h.core.agents.get(gone.agentId);
      return r.status === 'stopped' ? r : null;
    }, 'the missing container to be noticed');
    expect(row.statusReason).toBe('container_missing');
    await eventually(async () => {
      const info = await scene.h.docker.getContainer(`hangar-agent-${crashed.agentId}`).inspect();
      return info.State.Running && (await scene.h.core.agents.get(crashed.agentId)).status === 'running';
    }, 'the crashed agent to be restarted');

    // The user's next chat brings the removed one back on its volume.
    expect((await chat(gone.user, 'recreated')).text).toBe('echo: recreated');
  });

  it('removes a Hangar-labelled container that has no agent row', async () => {
    const orphanId = randomUUID();
    const name = `hangar-agent-${orphanId}`;
    await scene.h.docker.createContainer({
      name,
      Image: scene.h.core.config.agentImage,
      Labels: { 'dev.hangar.managed': 'true', 'dev.hangar.instance': await scene.h.core.settings.instanceId(), 'dev.hangar.agent-id': orphanId },
    });
    const bystander = await scene.h.docker.createContainer({ name: `not-hangar-${orphanId}`, Image: scene.h.core.config.agentImage });
    // Another Hangar installation's container on the same engine is not ours to reap.
    const neighbour = await scene.h.docker.createContainer({
      name: `hangar-agent-other-${orphanId}`,
      Image: scene.h.core.config.agentImage,
      Labels: { 'dev.hangar.managed': 'true', 'dev.hangar.instance': 'another-install', 'dev.hangar.agent-id': randomUUID() },
    });
    try {
      await trigger(FLEET_RECONCILE_SCHEDULE_ID);
      await eventually(async () => {
        const list = await scene.h.docker.listContainers({ all: true, filters: { name: [name] } });
        return list.length === 0;
      }, 'the orphan to be removed');
      const event = await eventually(
        () => scene.h.core.db.fleetEvent.findFirst({ where: { type: 'orphan_removed', payload: { path: ['agentId'], equals: orphanId } } }),
        'the orphan event',
      );
      expect(event.type).toBe('orphan_removed');
      expect((await bystander.inspect()).Id).toBeTruthy();
      expect((await neighbour.inspect()).Id).toBeTruthy();
    } finally {
      await bystander.remove({ force: true });
      await neighbour.remove({ force: true });
    }
  });
});
