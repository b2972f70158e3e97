import { randomUUID } from 'node:crypto';
import { WorkflowUpdateFailedError, WorkflowUpdateStage, type WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AGENT_LIFECYCLE_WORKFLOW,
  agentContainerName,
  agentWorkflowId,
  configChangedSignal,
  ensureRunningUpdate,
  reapIfIdleSignal,
  reconcileSignal,
  restartUpdate,
  stateQuery,
  stopUpdate,
  type AgentLifecycleWorkflow,
} from '../../core/contracts/agent.contract.ts';
import { AgentWorld, START, STOP } from '../support/agent-world.fake.ts';
import { historyEvents, keepHistory, signalHandled, startTier, waitFor, type Tier } from '../support/workflow-tier.harness.ts';

// agentLifecycle with Docker and the database as plain functions: the FIFO
// lock under interleavings built on purpose, the config-change debounce in
// virtual time, the reaper's re-check, reconciliation, and continue-as-new.

const stopBy = (reason: string) => ['record stopping', 'stop', `record stopped (${reason})`];

describe('agentLifecycle (time-skipping)', () => {
  const world = new AgentWorld();
  let t: Tier;

  beforeAll(async () => {
    t = await startTier({ name: 'lifecycle', control: world.control, host: world.host });
  });
  afterAll(async () => {
    await t?.shutdown();
  });

  async function lifecycle(opts: { alwaysOn?: boolean } = {}): Promise<{ id: string; handle: WorkflowHandle<AgentLifecycleWorkflow> }> {
    const id = randomUUID();
    const handle = await t.client.workflow.start<AgentLifecycleWorkflow>(AGENT_LIFECYCLE_WORKFLOW, {
      taskQueue: t.taskQueue,
      workflowId: agentWorkflowId(id),
      args: [{ agentId: id, dockerHostId: t.hostId, alwaysOn: opts.alwaysOn, settings: { restartDebounceMs: 3000, healthTimeoutSec: 30 } }],
    });
    return { id, handle };
  }

  async function running(opts: { alwaysOn?: boolean } = {}) {
    const l = await lifecycle(opts);
    const s = await l.handle.executeUpdate(ensureRunningUpdate);
    expect(s).toMatchObject({ status: 'running', generation: 1 });
    return l;
  }

  it('ensureRunning starts once; again it only looks; a container that stopped is started again', async () => {
    const { id, handle } = await lifecycle();
    const first = await handle.executeUpdate(ensureRunningUpdate);
    expect(first).toMatchObject({ status: 'running', phase: 'ready', generation: 1, hostPort: 40000 });
    expect(world.ops(id)).toEqual(START);

    expect(await handle.executeUpdate(ensureRunningUpdate)).toMatchObject({ status: 'running', generation: 1 });
    expect(world.ops(id)).toEqual([...START, 'inspect']);

    world.containers.get(agentContainerName(id))!.running = false;
    expect(await handle.executeUpdate(ensureRunningUpdate)).toMatchObject({ status: 'running', generation: 2 });
    expect(world.ops(id)).toEqual([...START, 'inspect', 'inspect', ...START]);
    await keepHistory(handle, 'agentLifecycle-ensure-running');
    await handle.terminate('test done');
  });

  it('a start that fails stops what it made, records the error, and fails the update', async () => {
    const { id, handle } = await lifecycle();
    world.unhealthy.add(id);
    const err = await handle.executeUpdate(ensureRunningUpdate).catch((e) => e);
    expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
    expect(err.cause).toMatchObject({ message: 'The agent could not start: health answered 500', type: 'agent_start_failed' });
    expect(world.ops(id)).toEqual(['record starting', 'spec', 'ensure', 'start', 'health', 'stop', 'record error (health answered 500)']);
    expect(await handle.query(stateQuery)).toMatchObject({ status: 'error', phase: 'failed', lastError: 'health answered 500', hostPort: null });
    // The failure is the update's, not the lifecycle's: the next start works.
    expect(await handle.executeUpdate(ensureRunningUpdate)).toMatchObject({ status: 'running', generation: 1 });
    await handle.terminate('test done');
  });

  it('a stop that fails is reported as a failed stop, and the agent is marked in error', async () => {
    const { id, handle } = await running();
    world.unstoppable.add(id);
    const err = await handle.executeUpdate(stopUpdate, { args: [{ reason: 'user' }] }).catch((e) => e);
    expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
    expect(err.cause).toMatchObject({ message: 'The agent could not stop: the engine timed out', type: 'agent_stop_failed' });
    expect(world.ops(id)).toEqual([...START, 'record stopping', 'stop', 'record error (stop_failed)']);
    expect(await handle.query(stateQuery)).toMatchObject({ status: 'error', phase: 'failed', lastError: 'the engine timed out' });
    await handle.terminate('test done');
  });

  it('refuses a stop reason that is not a short string, before touching anything', async () => {
    const { id, handle } = await running();
    const err = await handle.executeUpdate(stopUpdate, { args: [{ reason: 'x'.repeat(201) }] }).catch((e) => e);
    expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
    expect(err.cause?.message).toMatch(/at most 200 characters/);
    expect(world.ops(id)).toEqual(START);
    // Rejected by the validator: no trace of it in the history either.
    const events = await historyEvents(handle);
    expect(events.filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input?.name === 'stop')).toHaveLength(0);
    await handle.terminate('test done');
  });

  it('FIFO lock: start, stop, restart, reap and start queued behind a slow start run one at a time, in arrival order', async () => {
    const { id, handle } = await lifecycle();
    const health = world.hold('health', id);
    const accepted = { waitForStage: WorkflowUpdateStage.ACCEPTED } as const;
    // Each update is accepted (its handler has run and joined the queue) before the next is sent.
    const u1 = await handle.startUpdate(ensureRunningUpdate, accepted);
    await world.until(id, (ops) => ops.includes('health'), 'the first start to reach its health check');
    const u2 = await handle.startUpdate(stopUpdate, { ...accepted, args: [{ reason: 'user' }] });
    const u3 = await handle.startUpdate(restartUpdate, { ...accepted, args: [{ reason: 'admin' }] });
    await handle.signal(reapIfIdleSignal);
    await signalHandled(handle, 'reapIfIdle');
    const u4 = await handle.startUpdate(ensureRunningUpdate, accepted);
    // Nothing queued may run while the first start holds the lock.
    expect(world.ops(id)).toEqual(START.slice(0, 5));

    health.open();
    const [r1, r2, r3, r4] = await Promise.all([u1.result(), u2.result(), u3.result(), u4.result()]);
    expect([r1.status, r1.generation]).toEqual(['running', 1]);
    expect([r2.status, r2.generation]).toEqual(['stopped', 1]);
    expect([r3.status, r3.generation]).toEqual(['running', 2]);
    expect([r4.status, r4.generation]).toEqual(['running', 3]);
    expect(world.ops(id)).toEqual([
      ...START, // u1
      ...stopBy('user'), // u2
      ...START, // u3: its stop finds the agent stopped, so only the start
      'idle?', ...stopBy('idle'), // the reaper, after the restart
      ...START, // u4 starts it again
    ]);
    expect(await handle.query(stateQuery)).toMatchObject({ status: 'running', generation: 3, restartPending: false });
    await keepHistory(handle, 'agentLifecycle-fifo-lock');
    await handle.terminate('test done');
  });

  it('debounce: a burst of 5 config changes 1 s apart restarts once, after the burst settles; a later change restarts again', async () => {
    const { id, handle } = await running();
    const before = world.ops(id).length;
    let last = 0;
    for (let i = 0; i < 5; i++) {
      last = await t.env.currentTimeMs();
      await handle.signal(configChangedSignal);
      await t.env.sleep(1000);
    }
    // Past any debounce window: the clock cannot pass a pending workflow task or activity, so the restart has run.
    await t.env.sleep(30_000);
    expect(world.ops(id).slice(before)).toEqual([...stopBy('config_changed'), ...START]);
    // The restart's Docker stop (its row write before it is a local activity, timed by the worker's own clock, not the server's).
    const restartAt = world.calls.filter((c) => c.agentId === id)[before + 1].at;
    expect(restartAt - last).toBeGreaterThanOrEqual(3000);
    expect(restartAt - last).toBeLessThanOrEqual(6000);
    expect(await handle.query(stateQuery)).toMatchObject({ status: 'running', generation: 2, restartPending: false });
    const signals = (await historyEvents(handle)).filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'configChanged');
    expect(signals).toHaveLength(5);

    await handle.signal(configChangedSignal);
    await t.env.sleep(30_000);
    expect(world.ops(id).slice(before)).toEqual([...stopBy('config_changed'), ...START, ...stopBy('config_changed'), ...START]);
    expect(await handle.query(stateQuery)).toMatchObject({ generation: 3, restartPending: false });
    await keepHistory(handle, 'agentLifecycle-debounce');
    await handle.terminate('test done');
  });

  it('debounce: a config change to a stopped agent settles without starting it', async () => {
    const { id, handle } = await lifecycle();
    await handle.signal(configChangedSignal);
    await t.env.sleep(30_000);
    const events = await historyEvents(handle);
    // The debounce ran to its end (its timer fired), and chose to do nothing.
    expect(events.some((e) => e.timerFiredEventAttributes)).toBe(true);
    expect(await handle.query(stateQuery)).toMatchObject({ status: 'stopped', restartPending: false, generation: 0 });
    expect(world.ops(id)).toEqual([]);
    await handle.terminate('test done');
  });

  it('reapIfIdle stops an idle agent, leaves a busy one running, and ignores a stopped one', async () => {
    const idle = await running();
    await idle.handle.signal(reapIfIdleSignal);
    await world.until(idle.id, (ops) => ops.at(-1) === 'record stopped (idle)', 'the idle agent to be stopped');
    expect(world.ops(idle.id)).toEqual([...START, 'idle?', ...stopBy('idle')]);
    expect(await idle.handle.query(stateQuery)).toMatchObject({ status: 'stopped', hostPort: null });

    const busy = await running();
    world.busy.add(busy.id);
    await busy.handle.signal(reapIfIdleSignal);
    await signalHandled(busy.handle, 'reapIfIdle');
    // This update queues behind the reap: when it answers, the reap is over.
    expect(await busy.handle.executeUpdate(ensureRunningUpdate)).toMatchObject({ status: 'running', generation: 1 });
    expect(world.ops(busy.id)).toEqual([...START, 'idle?', 'inspect']);

    await idle.handle.signal(reapIfIdleSignal);
    await signalHandled(idle.handle, 'reapIfIdle');
    expect(await idle.handle.executeUpdate(ensureRunningUpdate)).toMatchObject({ status: 'running', generation: 2 });
    expect(world.ops(idle.id)).toEqual([...START, 'idle?', ...stopBy('idle'), ...START]);
    await keepHistory(idle.handle, 'agentLifecycle-reap');
    for (const h of [idle.handle, busy.handle]) await h.terminate('test done');
  });

  it('reconcile: a vanished container marks the row stopped; an exited one, or a vanished always-on one, is started again', async () => {
    const gone = await running();
    world.containers.delete(agentContainerName(gone.id));
    await gone.handle.signal(reconcileSignal, { observed: 'missing' });
    await world.until(gone.id, (ops) => ops.at(-1) === 'record stopped (container_missing)', 'the row to be marked stopped');
    expect(world.ops(gone.id)).toEqual([...START, 'inspect', 'record stopped (container_missing)']);
    expect(await gone.handle.query(stateQuery)).toMatchObject({ status: 'stopped', containerId: null, hostPort: null });

    const exited = await running();
    world.containers.get(agentContainerName(exited.id))!.running = false;
    await exited.handle.signal(reconcileSignal, { observed: 'exited', exitCode: 137 });
    await world.untilCount(exited.id, 'record running', 2);
    expect(world.ops(exited.id)).toEqual([...START, 'inspect', ...START]);

    const system = await running({ alwaysOn: true });
    world.containers.delete(agentContainerName(system.id));
    await system.handle.signal(reconcileSignal, { observed: 'missing' });
    await world.untilCount(system.id, 'record running', 2);
    expect(world.ops(system.id)).toEqual([...START, 'inspect', ...START]);
    expect(await system.handle.query(stateQuery)).toMatchObject({ status: 'running', generation: 2 });

    // Docker agrees with the row after all: nothing to do.
    await system.handle.signal(reconcileSignal, { observed: 'exited' });
    await signalHandled(system.handle, 'reconcile');
    expect(await system.handle.executeUpdate(ensureRunningUpdate)).toMatchObject({ generation: 2 });
    expect(world.ops(system.id)).toEqual([...START, 'inspect', ...START, 'inspect', 'inspect']);
    await keepHistory(exited.handle, 'agentLifecycle-reconcile');
    for (const h of [gone.handle, exited.handle, system.handle]) await h.terminate('test done');
  });

  it('continues as new when the server suggests it, keeping the agent\'s state', async () => {
    // The test server suggests continue-as-new past 4 MB of history: big specs get there in a few starts.
    world.specEnv = { PADDING: 'x'.repeat(900_000) };
    try {
      const { id, handle } = await lifecycle();
      const firstRun = (await handle.describe()).runId;
      for (let i = 0; i < 3; i++) {
        expect(await handle.executeUpdate(ensureRunningUpdate)).toMatchObject({ generation: i + 1 });
        world.containers.get(agentContainerName(id))!.running = false;
      }
      world.specEnv = {};
      const { runId } = await waitFor(async () => {
        const d = await handle.describe();
        return d.runId !== firstRun ? d : null;
      }, 'a new run after continue-as-new');
      expect(runId).not.toBe(firstRun);
      // Carried over: the state says running (the container stopped meanwhile, so ensureRunning starts it).
      expect(await handle.query(stateQuery)).toMatchObject({ agentId: id, status: 'running', generation: 3 });
      expect(await handle.executeUpdate(ensureRunningUpdate)).toMatchObject({ status: 'running', generation: 4 });
      // The new run carries on: one more restart bumps the carried generation.
      expect(await handle.executeUpdate(restartUpdate, { args: [{ reason: 'after rollover' }] })).toMatchObject({ status: 'running', generation: 5 });
      await handle.terminate('test done');
    } finally {
      world.specEnv = {};
    }
  });
});
