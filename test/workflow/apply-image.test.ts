import { randomUUID } from 'node:crypto';
import { WorkflowUpdateFailedError, WorkflowUpdateStage } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AGENT_LIFECYCLE_WORKFLOW,
  agentContainerName,
  agentWorkflowId,
  applyImageUpdate,
  ensureRunningUpdate,
  stateQuery,
  type AgentLifecycleWorkflow,
  type LifecycleState,
} from '../../core/contracts/agent.contract.ts';
import type { ApplyImageRequest } from '../../core/contracts/rollout.contract.ts';
import { AgentWorld, NEW, OLD, START } from '../support/agent-world.fake.ts';
import { keepHistory, startTier, type Tier } from '../support/workflow-tier.harness.ts';

// applyImage's branches (it runs inside the agent's lifecycle, under its lock)
// with Docker as recording fakes, so paths a real engine rarely takes are
// walked on purpose: a failed update rolled back, a rollback that itself fails
// (the snapshot must be kept), a stopped agent checked and stopped again.

const request = (over: Partial<ApplyImageRequest> = {}): ApplyImageRequest => ({
  rolloutId: 'r1',
  attempt: 0,
  image: 'x:1',
  toDigest: NEW,
  healthTimeoutSec: 5,
  healthPollMs: 100,
  ...over,
});

describe('applyImage inside agentLifecycle (time-skipping)', () => {
  const world = new AgentWorld();
  let t: Tier;

  beforeAll(async () => {
    t = await startTier({ name: 'apply-image', control: world.control, host: world.host });
  });
  afterAll(async () => {
    await t?.shutdown();
  });

  async function agent(status: 'running' | 'stopped', opts: { container?: boolean; image?: string } = {}) {
    const id = randomUUID();
    world.scenario = { newImageHealthy: true, restoreFails: false };
    if (opts.container !== false) world.putContainer(id, { running: status === 'running', image: opts.image ?? OLD });
    const state: LifecycleState = { agentId: id, dockerHostId: t.hostId, status, phase: 'idle', containerId: 'c', hostPort: 1, lastError: null, generation: 1, restartPending: false, imageDigest: OLD };
    const handle = await t.client.workflow.start<AgentLifecycleWorkflow>(AGENT_LIFECYCLE_WORKFLOW, { taskQueue: t.taskQueue, workflowId: agentWorkflowId(id), args: [{ agentId: id, dockerHostId: t.hostId, state }] });
    /** Docker-side calls only, as the update made them. */
    const dockerOps = () => world.ops(id).filter((o) => !o.startsWith('record') && o !== 'spec');
    const records = () => world.ops(id).filter((o) => o.startsWith('record'));
    return { id, handle, dockerOps, records };
  }

  it('a failed update is rolled back: volume restored, old digest recreated and checked, snapshot deleted', async () => {
    const a = await agent('running');
    world.scenario.newImageHealthy = false;
    const r = await a.handle.executeUpdate(applyImageUpdate, { args: [request()] });
    expect(r).toMatchObject({ outcome: 'rolled_back', fromDigest: OLD, toDigest: NEW, error: 'health answered 500' });
    expect(a.dockerOps()).toEqual([
      'space', 'stop', 'snapshot', 'mint', 'remove', 'ensure new', 'start', 'health new',
      'stop', 'restore', 'mint', 'remove', 'ensure', 'start', 'health', 'delete snapshot',
    ]);
    expect(a.records()).toEqual(['record updating (updating to bbbbbbbbbbbb)', 'record running']);
    expect(world.containers.get(agentContainerName(a.id))).toMatchObject({ image: OLD, running: true });
    expect(await a.handle.query(stateQuery)).toMatchObject({ status: 'running', imageDigest: OLD, generation: 2, phase: 'ready' });
    await keepHistory(a.handle, 'agentLifecycle-apply-image-rolled-back');
    await a.handle.terminate('test done');
  });

  it('a rollback that fails keeps the snapshot and leaves the agent in error', async () => {
    const a = await agent('running');
    world.scenario = { newImageHealthy: false, restoreFails: true };
    const r = await a.handle.executeUpdate(applyImageUpdate, { args: [request()] });
    expect(r.outcome).toBe('failed');
    expect(r.snapshotPath).toBe(`/snapshots/${a.id}.tar`);
    expect(r.error).toBe('health answered 500; rollback failed: no space left on device');
    expect(a.dockerOps()).toEqual(['space', 'stop', 'snapshot', 'mint', 'remove', 'ensure new', 'start', 'health new', 'stop', 'restore', 'stop']);
    expect(a.records().at(-1)).toBe('record error (rollback_failed)');
    expect(await a.handle.query(stateQuery)).toMatchObject({ status: 'error', phase: 'failed', hostPort: null });
    await a.handle.terminate('test done');
  });

  it('a stopped agent is updated, checked healthy, and stopped again', async () => {
    const a = await agent('stopped');
    const r = await a.handle.executeUpdate(applyImageUpdate, { args: [request()] });
    expect(r).toMatchObject({ outcome: 'updated', fromDigest: OLD, toDigest: NEW });
    expect(a.dockerOps()).toEqual(['space', 'stop', 'snapshot', 'mint', 'remove', 'ensure new', 'start', 'health new', 'stop', 'delete snapshot']);
    expect(a.records()).toEqual(['record updating (updating to bbbbbbbbbbbb)', 'record running', 'record stopping', 'record stopped (image_updated)']);
    expect(await a.handle.query(stateQuery)).toMatchObject({ status: 'stopped', imageDigest: NEW });
    await keepHistory(a.handle, 'agentLifecycle-apply-image-stopped');
    await a.handle.terminate('test done');
  });

  it('no room for the snapshot: the agent is never stopped and the update is skipped', async () => {
    const a = await agent('running');
    world.scenario.noSpace = 'check';
    const r = await a.handle.executeUpdate(applyImageUpdate, { args: [request()] });
    expect(r).toMatchObject({ outcome: 'skipped', fromDigest: OLD, error: expect.stringMatching(/^snapshot_no_space: not enough free space/) });
    expect(a.dockerOps()).toEqual(['space']);
    expect(a.records()).toEqual([]);
    expect(world.containers.get(agentContainerName(a.id))).toMatchObject({ image: OLD, running: true });
    await a.handle.terminate('test done');
  });

  it('the disk fills while snapshotting: a running agent comes back on its old image in a new container, a stopped one stays stopped', async () => {
    const a = await agent('running');
    world.scenario.noSpace = 'snapshot';
    const r = await a.handle.executeUpdate(applyImageUpdate, { args: [request()] });
    expect(r).toMatchObject({ outcome: 'skipped', fromDigest: OLD, error: expect.stringMatching(/^snapshot_no_space: the snapshot disk filled up/) });
    expect(a.dockerOps()).toEqual(['space', 'stop', 'snapshot', 'mint', 'remove', 'ensure', 'start', 'health']);
    expect(a.records().at(-1)).toBe('record running');
    await keepHistory(a.handle, 'agentLifecycle-apply-image-no-space');
    await a.handle.terminate('test done');

    const s = await agent('stopped');
    world.scenario.noSpace = 'snapshot';
    expect((await s.handle.executeUpdate(applyImageUpdate, { args: [request()] })).outcome).toBe('skipped');
    expect(s.dockerOps()).toEqual(['space', 'stop', 'snapshot']);
    expect(s.records().at(-1)).toBe('record stopped (snapshot_no_space)');
    await s.handle.terminate('test done');
  });

  it('an agent already on the digest, or never created, is only recorded', async () => {
    const on = await agent('running', { image: NEW });
    expect(await on.handle.executeUpdate(applyImageUpdate, { args: [request()] })).toEqual({ outcome: 'updated', fromDigest: NEW, toDigest: NEW });
    expect(on.dockerOps()).toEqual([]);
    expect(on.records()).toEqual(['record running']);

    const never = await agent('stopped', { container: false });
    expect(await never.handle.executeUpdate(applyImageUpdate, { args: [request()] })).toEqual({ outcome: 'updated', fromDigest: OLD, toDigest: NEW });
    expect(never.dockerOps()).toEqual([]);
    expect(never.records()).toEqual(['record stopped (image_updated)']);
    expect(await never.handle.query(stateQuery)).toMatchObject({ imageDigest: NEW });
    for (const h of [on.handle, never.handle]) await h.terminate('test done');
  });

  it('refuses a malformed request before it is queued', async () => {
    const a = await agent('running');
    for (const bad of [request({ toDigest: 'latest' }), request({ healthTimeoutSec: 1 }), request({ healthPollMs: 10 })]) {
      const err = await a.handle.executeUpdate(applyImageUpdate, { args: [bad] }).catch((e) => e);
      expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
    }
    expect(world.ops(a.id)).toEqual([]);
    await a.handle.terminate('test done');
  });

  it('waits its turn behind a start in progress', async () => {
    const a = await agent('stopped');
    const health = world.hold('health', a.id);
    const start = await a.handle.startUpdate(ensureRunningUpdate, { waitForStage: WorkflowUpdateStage.ACCEPTED });
    await world.until(a.id, (ops) => ops.includes('health'), 'the start to reach its health check');
    const update = await a.handle.startUpdate(applyImageUpdate, { args: [request()], waitForStage: WorkflowUpdateStage.ACCEPTED });
    expect(world.ops(a.id)).toEqual(START.slice(0, 5));
    health.open();
    expect((await start.result()).status).toBe('running');
    expect(await update.result()).toMatchObject({ outcome: 'updated', fromDigest: OLD });
    // The update began only after the start had recorded "running".
    expect(world.ops(a.id).slice(0, 7)).toEqual([...START, 'spec']);
    expect(await a.handle.query(stateQuery)).toMatchObject({ status: 'running', imageDigest: NEW });
    await a.handle.terminate('test done');
  });
});
