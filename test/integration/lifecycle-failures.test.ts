import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Client, Connection } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { NativeConnection, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseConfig } from '../../core/config.ts';
import {
  AGENT_LIFECYCLE_WORKFLOW,
  agentWorkflowId,
  type AgentLifecycleWorkflow,
  type ContainerSpec,
  type LifecycleState,
} from '../../core/contracts/agent.contract.ts';
import { createTemporalPort } from '../../core/control/temporal.port.ts';
import { AppError } from '../../core/errors.ts';

// How a lifecycle's failures come back through the Temporal port, on the real
// server with Docker replaced by a fake that fails on purpose: each keeps the
// status and code of what failed (a stop is a stop failure, not a start's).

describe('lifecycle failures through the Temporal port (real Temporal, fake Docker)', () => {
  const hostId = `fail${randomUUID().slice(0, 8)}`;
  const queue = `lifecycle-failures-${hostId}`;
  let failStop = false;
  let failHealth = false;
  let connection: NativeConnection;
  let clientConnection: Connection;
  let client: Client;
  let workers: Worker[];
  let running: Promise<unknown>;
  const config = parseConfig({ TEMPORAL_NAMESPACE: 'default' });
  const port = createTemporalPort({ config, address: inject('stack').temporalAddress });

  beforeAll(async () => {
    const address = inject('stack').temporalAddress;
    connection = await NativeConnection.connect({ address });
    clientConnection = await Connection.connect({ address });
    client = new Client({ connection: clientConnection });
    const control = {
      getContainerSpec: async () => ({ containerName: 'fake-agent', volumeName: 'fake-vol', image: 'x' }) as ContainerSpec,
      beginAgentStart: async () => ({ containerName: 'fake-agent', volumeName: 'fake-vol', image: 'x' }) as ContainerSpec,
      recordAgentState: async () => undefined,
      isAgentIdle: async () => false,
    };
    const docker = {
      stopContainer: async () => {
        if (failStop) throw ApplicationFailure.nonRetryable('permission denied on the Docker socket', 'docker_error');
      },
      ensureContainer: async () => ({ containerId: 'c', created: true, imageId: 'sha256:x' }),
      startContainer: async () => ({ hostPort: 1 }),
      waitHealthy: async () => {
        if (failHealth) throw ApplicationFailure.nonRetryable('agent not healthy within 5s (health answered 500)', 'health_timeout');
      },
      // The one-step start (create + start + readiness in one activity).
      launchContainer: async () => {
        if (failHealth) throw ApplicationFailure.nonRetryable('agent not healthy within 5s (health answered 500)', 'health_timeout');
        return { containerId: 'c', imageId: 'sha256:x', hostPort: 1 };
      },
      inspectContainer: async () => null,
    };
    workers = await Promise.all([
      Worker.create({ connection, taskQueue: queue, workflowBundle: { code: await readFile(inject('stack').workflowBundlePath, 'utf8') }, activities: control }),
      Worker.create({ connection, taskQueue: `docker-${hostId}`, activities: docker }),
    ]);
    running = Promise.all(workers.map((w) => w.run()));
  });

  afterAll(async () => {
    for (const w of workers ?? []) w.shutdown();
    await running;
    await port.close();
    await connection?.close();
    await clientConnection?.close();
  });

  async function lifecycle(status: LifecycleState['status']) {
    const agentId = randomUUID();
    const state: LifecycleState = { agentId, dockerHostId: hostId, status, phase: 'idle', containerId: 'c', hostPort: 1, lastError: null, generation: 1, restartPending: false };
    // The port finds lifecycles by their business id, whatever queue runs them.
    return client.workflow.start<AgentLifecycleWorkflow>(AGENT_LIFECYCLE_WORKFLOW, { taskQueue: queue, workflowId: agentWorkflowId(agentId), args: [{ agentId, dockerHostId: hostId, state }] });
  }

  const failure = (p: Promise<unknown>) => p.then(() => null, (err: unknown) => err);

  it('a stop that fails is a stop failure (503 agent_stop_failed), with the cause', async () => {
    failStop = true;
    failHealth = false;
    const h = await lifecycle('running');
    try {
      const err = await failure(port.agents.stop(h.workflowId.slice('agent/'.length), 'user_request'));
      expect(err).toBeInstanceOf(AppError);
      expect(err).toMatchObject({ status: 503, code: 'agent_stop_failed' });
      expect((err as Error).message).toBe('The agent could not stop: permission denied on the Docker socket');
    } finally {
      await h.terminate('test done');
    }
  });

  it('a start that fails is a start failure, and a stop of a stopped agent succeeds', async () => {
    failStop = false;
    failHealth = true;
    const h = await lifecycle('stopped');
    const agentId = h.workflowId.slice('agent/'.length);
    try {
      expect(await port.agents.stop(agentId, 'user_request')).toMatchObject({ status: 'stopped' });
      const err = await failure(port.agents.restart({ id: agentId, name: 'default', ownerKind: 'user', ownerId: 'u', dockerHostId: hostId }, 'user_request'));
      expect(err).toMatchObject({ status: 503, code: 'agent_start_failed' });
      expect((err as Error).message).toMatch(/^The agent could not start: agent not healthy within 5s/);
    } finally {
      await h.terminate('test done');
    }
  });

  it('an update the lifecycle refuses is 400 invalid_input; an agent without a lifecycle reads as null', async () => {
    const h = await lifecycle('running');
    try {
      const err = await failure(port.agents.applyImage({ id: h.workflowId.slice(6), name: 'd', ownerKind: 'user', ownerId: 'u', dockerHostId: hostId }, { rolloutId: 'r', attempt: 0, image: 'x', toDigest: 'not-a-digest', healthTimeoutSec: 5, healthPollMs: 100 }, `bad-${randomUUID()}`));
      expect(err).toMatchObject({ status: 400, code: 'invalid_input' });
    } finally {
      await h.terminate('test done');
    }
    expect(await port.agents.state(randomUUID())).toBeNull();
    expect(await port.agents.stop(randomUUID(), 'user_request')).toBeNull();
  });
});
