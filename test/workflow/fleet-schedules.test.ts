import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AGENT_LIFECYCLE_WORKFLOW,
  agentContainerName,
  agentWorkflowId,
  ensureRunningUpdate,
  FLEET_RECONCILE_WORKFLOW,
  IDLE_REAPER_WORKFLOW,
  stateQuery,
  stopUpdate,
  type AgentLifecycleWorkflow,
} from '../../core/contracts/agent.contract.ts';
import type { fleetReconcile } from '../../workflows/fleet-reconcile.workflow.ts';
import type { idleReaper } from '../../workflows/idle-reaper.workflow.ts';
import { AgentWorld, START } from '../support/agent-world.fake.ts';
import { keepHistory, signalHandled, startTier, type Tier } from '../support/workflow-tier.harness.ts';

// The two scheduled workflows against real agent lifecycles (activities
// faked): the reaper only asks, and each lifecycle decides under its lock; the
// reconciler fixes rows both ways and never touches what is not Hangar's.

describe('idleReaper and fleetReconcile (time-skipping)', () => {
  const world = new AgentWorld();
  let t: Tier;

  beforeAll(async () => {
    t = await startTier({ name: 'fleet', control: world.control, host: world.host });
    world.hosts = [t.hostId];
    world.client = t.client;
  });
  afterAll(async () => {
    await t?.shutdown();
  });

  async function runningAgent() {
    const id = randomUUID();
    const handle = await t.client.workflow.start<AgentLifecycleWorkflow>(AGENT_LIFECYCLE_WORKFLOW, {
      taskQueue: t.taskQueue,
      workflowId: agentWorkflowId(id),
      args: [{ agentId: id, dockerHostId: t.hostId }],
    });
    expect((await handle.executeUpdate(ensureRunningUpdate)).status).toBe('running');
    world.existing.add(id);
    return { id, handle };
  }

  it('idleReaper asks each idle agent\'s lifecycle: an idle one stops, one that got busy meanwhile stays, one without a lifecycle is skipped', async () => {
    const idle = await runningAgent();
    const busy = await runningAgent();
    world.busy.add(busy.id);
    world.idleCandidates = [idle.id, busy.id, randomUUID()];
    const reaper = await t.client.workflow.start<typeof idleReaper>(IDLE_REAPER_WORKFLOW, { taskQueue: t.taskQueue, workflowId: `idle-reaper/${randomUUID()}` });
    expect(await reaper.result()).toEqual({ asked: 2 });

    await world.until(idle.id, (ops) => ops.at(-1) === 'record stopped (idle)', 'the idle agent to stop');
    expect(world.ops(idle.id)).toEqual([...START, 'idle?', 'record stopping', 'stop', 'record stopped (idle)']);

    await signalHandled(busy.handle, 'reapIfIdle');
    // Queued behind the reap in the lifecycle's lock: when this answers, the reap has decided.
    expect(await busy.handle.executeUpdate(ensureRunningUpdate)).toMatchObject({ status: 'running', generation: 1 });
    expect(world.ops(busy.id)).toEqual([...START, 'idle?', 'inspect']);
    await keepHistory(reaper, 'idleReaper');
    for (const a of [idle, busy]) await a.handle.terminate('test done');
  });

  it('fleetReconcile hands vanished and crashed containers to their lifecycles, fixes rows without one, and removes only Hangar orphans', async () => {
    const gone = await runningAgent();
    const crashed = await runningAgent();
    const healthy = await runningAgent();
    const noLifecycle = randomUUID();
    const stoppedRow = randomUUID();
    const orphan = randomUUID();
    world.existing.add(noLifecycle).add(stoppedRow);
    world.containers.delete(agentContainerName(gone.id));
    world.containers.get(agentContainerName(crashed.id))!.running = false;
    world.putContainer(orphan);
    world.containers.set('someone-elses-container', { id: 'x', running: true, image: 'other', exitCode: null });
    world.rows = [
      { id: gone.id, status: 'running', containerName: agentContainerName(gone.id) },
      { id: crashed.id, status: 'running', containerName: agentContainerName(crashed.id) },
      { id: healthy.id, status: 'running', containerName: agentContainerName(healthy.id) },
      { id: noLifecycle, status: 'running', containerName: agentContainerName(noLifecycle) },
      { id: stoppedRow, status: 'stopped', containerName: agentContainerName(stoppedRow) },
    ];

    const handle = await t.client.workflow.start<typeof fleetReconcile>(FLEET_RECONCILE_WORKFLOW, { taskQueue: t.taskQueue, workflowId: `fleet-reconcile/${randomUUID()}` });
    const report = await handle.result();
    expect(report).toEqual({
      hosts: 1, fixed: [gone.id, crashed.id], orphansRemoved: [agentContainerName(orphan)], missingLifecycle: [noLifecycle], measured: 0, overQuota: [],
      // The health checks ran beside it: every running container answered.
      checked: expect.any(Number), unhealthy: [], unhealthyRestarted: [],
    });
    expect(world.ops(noLifecycle)).toEqual(['record stopped (lifecycle_missing)']);
    expect(world.ops(orphan)).toEqual(['remove']);
    expect(world.containers.has('someone-elses-container')).toBe(true);
    expect(world.fleetEvents).toEqual([{ type: 'orphan_removed', payload: { container: agentContainerName(orphan), agentId: orphan, hostId: t.hostId } }]);
    expect(world.ops(stoppedRow)).toEqual([]);

    // Each lifecycle acts on the signal under its own lock.
    await world.until(gone.id, (ops) => ops.at(-1) === 'record stopped (container_missing)', 'the vanished agent\'s row to be fixed');
    await world.untilCount(crashed.id, 'record running', 2);
    expect(world.ops(crashed.id)).toEqual([...START, 'inspect', ...START]);
    expect(await gone.handle.query(stateQuery)).toMatchObject({ status: 'stopped', containerId: null });
    expect(world.ops(healthy.id)).toEqual(START);
    await keepHistory(handle, 'fleetReconcile');
    for (const a of [gone, crashed, healthy]) await a.handle.terminate('test done');
  });

  it('fleetReconcile measures every volume first and stops, through its lifecycle, each agent over the storage cap', async () => {
    world.rows = [];
    world.volumeSizes = new Map([['big-agent', 5000], ['small-agent', 10]]);
    world.storageCapBytes = 1024;
    const handle = await t.client.workflow.start<typeof fleetReconcile>(FLEET_RECONCILE_WORKFLOW, { taskQueue: t.taskQueue, workflowId: `fleet-reconcile/${randomUUID()}` });
    const report = await handle.result();
    expect(report).toMatchObject({ measured: 2, overQuota: ['big-agent'] });
    expect(world.ops('big-agent')).toEqual(['stop over quota']);
    expect(world.ops('small-agent')).toEqual([]);
    expect(world.fleetEvents.filter((e) => e.type === 'agent.storage_quota_exceeded')).toEqual([
      expect.objectContaining({ payload: expect.objectContaining({ storageBytes: 5000, capBytes: 1024, stopped: true }) }),
    ]);
    world.volumeSizes.clear();
  });

  const reconcileOnce = async () => {
    const handle = await t.client.workflow.start<typeof fleetReconcile>(FLEET_RECONCILE_WORKFLOW, { taskQueue: t.taskQueue, workflowId: `fleet-reconcile/${randomUUID()}` });
    return { handle, report: await handle.result() };
  };
  const rowsFor = (...ids: string[]) => ids.map((id) => ({ id, status: 'running', containerName: agentContainerName(id) }));

  it('fleetReconcile counts consecutive failed health checks and restarts, through its lifecycle, only an agent past the threshold', async () => {
    world.containers.clear(); // the earlier tests' agents are gone
    const hung = await runningAgent();
    const flaky = await runningAgent();
    const healthy = await runningAgent();
    world.rows = rowsFor(hung.id, flaky.id, healthy.id);
    world.healthThreshold = 3;
    world.notAnswering.add(hung.id).add(flaky.id);

    // Two failures each: counted, nobody restarted yet.
    for (let i = 0; i < 2; i++) {
      const { report } = await reconcileOnce();
      expect(report).toMatchObject({ checked: 3, unhealthyRestarted: [] });
      expect(new Set(report.unhealthy)).toEqual(new Set([hung.id, flaky.id]));
    }
    expect(world.healthFailures.get(hung.id)).toBe(2);
    // The flaky agent answers once: its count starts again.
    world.notAnswering.delete(flaky.id);
    const { handle, report } = await reconcileOnce();
    expect(report).toMatchObject({ unhealthy: [hung.id], unhealthyRestarted: [hung.id] });

    // The hung agent's lifecycle restarted it under its lock: a stop with the reason, then a whole start.
    await world.untilCount(hung.id, 'record running', 2);
    world.notAnswering.delete(hung.id);
    world.notAnswering.add(flaky.id);
    expect((await reconcileOnce()).report).toMatchObject({ unhealthy: [flaky.id], unhealthyRestarted: [] });
    expect(world.healthFailures.get(flaky.id)).toBe(1);
    expect(world.healthFailures.has(hung.id)).toBe(false);
    world.notAnswering.clear();
    expect(world.ops(hung.id)).toEqual([...START, 'inspect', 'record stopping', 'stop', 'record stopped (unhealthy)', ...START]);
    expect(await hung.handle.query(stateQuery)).toMatchObject({ status: 'running', generation: 2 });
    expect(world.fleetEvents.filter((e) => e.type === 'agent.unhealthy_restarted')).toEqual([
      { type: 'agent.unhealthy_restarted', payload: { hostId: t.hostId, agentId: hung.id, failures: 3, failure: 'no answer within 3000 ms' } },
    ]);
    // Left alone: the agent that answered, and the one that never reached the threshold in a row.
    expect(world.ops(healthy.id)).toEqual(START);
    expect(world.ops(flaky.id)).toEqual(START);
    await keepHistory(handle, 'fleetReconcile-health');
    await keepHistory(hung.handle, 'agentLifecycle-unhealthy-restart');
    for (const a of [hung, flaky, healthy]) await a.handle.terminate('test done');
    world.fleetEvents = [];
  });

  it('an unhealthy restart queues behind a user\'s stop in the lifecycle\'s lock, and then leaves the stopped agent alone', async () => {
    const agent = await runningAgent();
    world.rows = rowsFor(agent.id);
    world.healthThreshold = 1;
    world.notAnswering.add(agent.id);
    // The user's stop takes the lock first and is held mid-way; the reconciler's restart waits behind it.
    const held = world.hold('stop', agent.id);
    const stopping = agent.handle.executeUpdate(stopUpdate, { args: [{ reason: 'user' }] });
    await world.until(agent.id, (ops) => ops.at(-1) === 'stop', 'the user\'s stop to reach Docker');
    expect((await reconcileOnce()).report).toMatchObject({ unhealthyRestarted: [agent.id] });
    await signalHandled(agent.handle, 'reconcile');
    held.open();
    expect(await stopping).toMatchObject({ status: 'stopped' });
    // Queued behind both: when this answers, the restart request has been decided (not running: nothing to do).
    expect(await agent.handle.executeUpdate(ensureRunningUpdate)).toMatchObject({ status: 'running', generation: 2 });
    expect(world.ops(agent.id)).toEqual([...START, 'record stopping', 'stop', 'record stopped (user)', ...START]);
    world.notAnswering.clear();
    world.healthThreshold = 3;
    world.fleetEvents = [];
    await agent.handle.terminate('test done');
  });
});
