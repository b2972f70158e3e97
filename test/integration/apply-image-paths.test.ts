import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Client, Connection } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { NativeConnection, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ContainerSpec, LifecycleState } from '../../core/contracts/agent.contract.ts';
import type { ApplyImageResult } from '../../core/contracts/rollout.contract.ts';
import { agentLifecycle, applyImageUpdate } from '../../workflows/agent-lifecycle.workflow.ts';

// applyImage's branches on the real Temporal server, with Docker replaced by
// recording fakes, so paths a real engine rarely takes are walked on purpose:
// a failed update rolled back, a rollback that itself fails (the snapshot must
// be kept), a stopped agent that is checked and stopped again, and an update
// skipped for want of room for its snapshot (before or while writing it).

const OLD = `sha256:${'a'.repeat(64)}`;
const NEW = `sha256:${'b'.repeat(64)}`;

interface Scenario {
  newImageHealthy: boolean;
  restoreFails: boolean;
  /** Where the snapshot disk turns out to be too small. */
  noSpace?: 'check' | 'snapshot';
}

describe('applyImage paths (real Temporal, fake Docker)', () => {
  const hostId = `fake${randomUUID().slice(0, 8)}`;
  const queue = `apply-image-${hostId}`;
  const calls: string[] = [];
  const records: { status: string; imageDigest?: string; statusReason: string | null }[] = [];
  let scenario: Scenario = { newImageHealthy: true, restoreFails: false };
  let current = OLD;
  let connection: NativeConnection;
  let clientConnection: Connection;
  let client: Client;
  let workers: Worker[];
  let running: Promise<unknown>;

  const spec = { containerName: 'fake-agent', volumeName: 'fake-vol', image: OLD } as ContainerSpec;

  beforeAll(async () => {
    const address = inject('stack').temporalAddress;
    connection = await NativeConnection.connect({ address });
    clientConnection = await Connection.connect({ address });
    client = new Client({ connection: clientConnection });
    const control = {
      // 'mint': a spec with a fresh bootstrap token, i.e. one per container created.
      getContainerSpec: async (_id: string, purpose?: string) => (purpose === 'update' && calls.push('mint'), spec),
      recordAgentState: async (_id: string, patch: { status: string; imageDigest?: string; statusReason: string | null }) => void records.push(patch),
      isAgentIdle: async () => false,
    };
    const docker = {
      stopContainer: async () => void calls.push('stop'),
      removeContainer: async () => void calls.push('remove'),
      ensureContainer: async (s: ContainerSpec) => {
        calls.push(`create ${s.image === NEW ? 'new' : 'old'}`);
        current = s.image;
        return { containerId: `c-${s.image.slice(7, 10)}`, created: true, imageId: s.image };
      },
      startContainer: async () => (calls.push('start'), { hostPort: 1 }),
      waitHealthy: async () => {
        calls.push(`health ${current === NEW ? 'new' : 'old'}`);
        if (current === NEW && !scenario.newImageHealthy) throw ApplicationFailure.nonRetryable('health answered 500', 'health_timeout');
      },
      inspectContainer: async () => ({ name: 'fake-agent', id: 'c', agentId: null, running: true, exitCode: null }),
    };
    const images = {
      containerImage: async () => current,
      checkSnapshotSpace: async () => {
        calls.push('space');
        if (scenario.noSpace === 'check') throw ApplicationFailure.nonRetryable('not enough free space in /snapshots', 'snapshot_no_space');
        return { volumeBytes: 10, freeBytes: 1e9 };
      },
      snapshotVolume: async () => {
        calls.push('snapshot');
        if (scenario.noSpace === 'snapshot') throw ApplicationFailure.nonRetryable('the snapshot disk filled up', 'snapshot_no_space');
        return { path: '/snapshots/fake.tar', bytes: 10, sha256: 'x' };
      },
      restoreVolume: async () => {
        calls.push('restore');
        if (scenario.restoreFails) throw ApplicationFailure.nonRetryable('no space left on device', 'restore_failed');
        return { bytes: 10 };
      },
      deleteSnapshot: async () => void calls.push('delete snapshot'),
    };
    workers = await Promise.all([
      Worker.create({ connection, taskQueue: queue, workflowBundle: { code: await readFile(inject('stack').workflowBundlePath, 'utf8') }, activities: control }),
      Worker.create({ connection, taskQueue: `docker-${hostId}`, activities: { ...docker, ...images } }),
    ]);
    running = Promise.all(workers.map((w) => w.run()));
  });

  afterAll(async () => {
    for (const w of workers ?? []) w.shutdown();
    await running;
    await connection?.close();
    await clientConnection?.close();
  });

  async function apply(status: 'running' | 'stopped', s: Scenario): Promise<ApplyImageResult> {
    scenario = s;
    current = OLD;
    calls.length = 0;
    records.length = 0;
    const agentId = randomUUID();
    const state: LifecycleState = { agentId, dockerHostId: hostId, status, phase: 'idle', containerId: 'c', hostPort: 1, lastError: null, generation: 1, restartPending: false, imageDigest: OLD };
    const handle = await client.workflow.start(agentLifecycle, { taskQueue: queue, workflowId: `test-apply/${agentId}`, args: [{ agentId, dockerHostId: hostId, state }] });
    try {
      return await handle.executeUpdate(applyImageUpdate, { args: [{ rolloutId: 'r1', attempt: 0, image: 'x:1', toDigest: NEW, healthTimeoutSec: 5, healthPollMs: 100 }] });
    } finally {
      await handle.terminate('test done');
    }
  }

  it('a failed update is rolled back: volume restored, old digest recreated and checked, snapshot deleted', async () => {
    const r = await apply('running', { newImageHealthy: false, restoreFails: false });
    expect(r).toMatchObject({ outcome: 'rolled_back', fromDigest: OLD, toDigest: NEW, error: expect.stringContaining('health answered 500') });
    expect(calls).toEqual([
      'space', 'stop', 'snapshot', 'mint', 'remove', 'create new', 'start', 'health new',
      'stop', 'restore', 'mint', 'remove', 'create old', 'start', 'health old', 'delete snapshot',
    ]);
    expect(records.at(-1)).toMatchObject({ status: 'running', imageDigest: OLD });
  });

  it('a rollback that fails keeps the snapshot and leaves the agent in error', async () => {
    const r = await apply('running', { newImageHealthy: false, restoreFails: true });
    expect(r.outcome).toBe('failed');
    expect(r.snapshotPath).toBe('/snapshots/fake.tar');
    expect(r.error).toMatch(/health answered 500; rollback failed: no space left on device/);
    expect(calls).not.toContain('delete snapshot');
    expect(records.at(-1)).toMatchObject({ status: 'error', statusReason: 'rollback_failed' });
  });

  it('a stopped agent is updated, checked healthy, and stopped again', async () => {
    const r = await apply('stopped', { newImageHealthy: true, restoreFails: false });
    expect(r).toMatchObject({ outcome: 'updated', fromDigest: OLD });
    expect(calls).toEqual(['space', 'stop', 'snapshot', 'mint', 'remove', 'create new', 'start', 'health new', 'stop', 'delete snapshot']);
    expect(records.at(-1)).toMatchObject({ status: 'stopped' });
  });

  it('no room for the snapshot: the agent is never stopped and the update is skipped', async () => {
    const r = await apply('running', { newImageHealthy: true, restoreFails: false, noSpace: 'check' });
    expect(r).toMatchObject({ outcome: 'skipped', fromDigest: OLD, error: expect.stringMatching(/^snapshot_no_space: not enough free space/) });
    expect(calls).toEqual(['space']);
    expect(records).toEqual([]);
  });

  it('the disk fills while snapshotting: the agent comes back on its old image in a new container', async () => {
    const r = await apply('running', { newImageHealthy: true, restoreFails: false, noSpace: 'snapshot' });
    expect(r).toMatchObject({ outcome: 'skipped', fromDigest: OLD, error: expect.stringMatching(/^snapshot_no_space: the snapshot disk filled up/) });
    expect(calls).toEqual(['space', 'stop', 'snapshot', 'mint', 'remove', 'create old', 'start', 'health old']);
    expect(records.at(-1)).toMatchObject({ status: 'running', imageDigest: OLD, statusReason: null });

    const stopped = await apply('stopped', { newImageHealthy: true, restoreFails: false, noSpace: 'snapshot' });
    expect(stopped.outcome).toBe('skipped');
    expect(calls).toEqual(['space', 'stop', 'snapshot']);
    expect(records.at(-1)).toMatchObject({ status: 'stopped', statusReason: 'snapshot_no_space' });
  });
});
