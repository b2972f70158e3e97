import { randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import type { WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FEDERATION_COMMAND_WORKFLOW,
  federationStateQuery,
  federationWorkflowId,
  killRemoteAgentSignal,
  RETIRE_AGENT_WORKFLOW,
  retireAgentWorkflowId,
  type FederationCommandWorkflow,
  type RemoteAgentReport,
  type RetireAgentWorkflow,
} from '../../core/contracts/federation.contract.ts';
import { keepHistory, scheduledActivities, startTier, waitFor, type Tier } from '../support/workflow-tier.harness.ts';

// federationCommand (the hub's side of one remote agent) against a fake
// peer: spawn, follow, watch, kill; a peer that is down while the spawn is
// sent; a peer over its agent limit; a kill that arrives mid-spawn. And
// retireAgent (the spoke's removal of one agent) step by step.

class FakePeer {
  down = 0;
  limitReached = false;
  /** Status polls an agent stays `starting` for. */
  startingPolls = 1;
  /** Kills answered `stopping` before `removed`. */
  slowKills = 0;
  agents = new Map<string, { polls: number; status: RemoteAgentReport['status'] }>();
  calls: string[] = [];
  records: Array<{ id: string; status: string; statusReason?: string | null }> = [];
  events: string[] = [];

  report(ref: string): RemoteAgentReport {
    const a = this.agents.get(ref);
    return { ref, remoteAgentId: a ? `remote-${ref.slice(0, 8)}` : null, status: a?.status ?? 'removed', statusReason: null };
  }

  activities() {
    return {
      sendFederationCommand: async (req: { type: string; payload: { ref: string } }) => {
        this.calls.push(req.type);
        if (this.down > 0) {
          this.down--;
          throw new Error('connect ECONNREFUSED 127.0.0.1:1');
        }
        const { ref } = req.payload;
        if (req.type === 'agent.spawn') {
          if (this.limitReached) {
            throw ApplicationFailure.create({ message: 'Peer "hub" may run at most 1 agent here, and runs 1', type: 'peer_agent_limit', nonRetryable: true, details: [{ status: 429, details: null }] });
          }
          this.agents.set(ref, { polls: 0, status: 'starting' });
        } else if (req.type === 'agent.status') {
          const a = this.agents.get(ref);
          if (a && a.status === 'starting' && ++a.polls > this.startingPolls) a.status = 'running';
        } else if (req.type === 'agent.kill') {
          if (this.slowKills-- > 0) return { ...this.report(ref), status: 'stopping' };
          this.agents.delete(ref);
        }
        return this.report(ref);
      },
      recordFederatedAgent: async (req: { id: string; status: string; statusReason?: string | null }) => {
        this.records.push({ id: req.id, status: req.status, statusReason: req.statusReason });
      },
      recordFederationEvent: async (e: { type: string }) => {
        this.events.push(e.type);
      },
    };
  }

  statuses(id: string): string[] {
    return this.records.filter((r) => r.id === id).map((r) => r.status);
  }
}

describe('federationCommand and retireAgent (time-skipping)', () => {
  const peer = new FakePeer();
  const retired: string[] = [];
  let t: Tier;

  beforeAll(async () => {
    t = await startTier({
      name: 'federation',
      control: {
        ...peer.activities(),
        stopAgentForRetire: async () => void retired.push('stop'),
        endAgentLifecycle: async () => void retired.push('end lifecycle'),
        deleteRetiredAgent: async () => void retired.push('delete row'),
      } as never,
      host: {
        removeContainer: async ({ containerName }: { containerName: string }) => void retired.push(`remove ${containerName}`),
        removeAgentVolume: async ({ volumeName }: { volumeName: string }) => void retired.push(`remove ${volumeName}`),
      } as never,
    });
  });
  afterAll(async () => {
    await t?.shutdown();
  });

  async function command(): Promise<{ id: string; handle: WorkflowHandle<FederationCommandWorkflow> }> {
    const id = randomUUID();
    const handle = await t.client.workflow.start<FederationCommandWorkflow>(FEDERATION_COMMAND_WORKFLOW, {
      taskQueue: t.taskQueue,
      workflowId: federationWorkflowId('peer-1', id),
      args: [{ federatedAgentId: id, peerId: 'peer-1', name: 'Research', primaryModel: 'fake/echo', settings: { statusIntervalSec: 60, followTimeoutSec: 600, giveUpAfterSec: 3600 } }],
    });
    return { id, handle };
  }

  const phase = (handle: WorkflowHandle<FederationCommandWorkflow>, want: string) =>
    waitFor(async () => (await handle.query(federationStateQuery)).phase === want, `phase ${want}`);

  it('spawns, follows the status until running, refreshes it, and kills on request', async () => {
    peer.calls = [];
    const { id, handle } = await command();
    // Virtual time: the follow-up polls (1 s, 2 s, …) pass at once.
    await t.env.sleep('1 minute');
    await phase(handle, 'watching');
    expect(peer.statuses(id)).toEqual(['spawning', 'starting', 'running']);
    // A status round per interval: an hour later the peer has been asked again.
    const before = peer.calls.filter((c) => c === 'agent.status').length;
    await t.env.sleep('3 minutes');
    await waitFor(() => peer.calls.filter((c) => c === 'agent.status').length > before, 'a status refresh');
    peer.slowKills = 1;
    await handle.signal(killRemoteAgentSignal, { reason: 'admin_request' });
    const end = await handle.result();
    expect(end).toMatchObject({ phase: 'done', killReason: 'admin_request', report: { status: 'removed' } });
    expect(peer.statuses(id).slice(-2)).toEqual(['stopping', 'removed']);
    expect(peer.calls.filter((c) => c === 'agent.kill')).toHaveLength(2);
    expect(peer.agents.has(id)).toBe(false);
    await keepHistory(handle, 'federationCommand-spawn-run-kill');
  });

  it('retries the spawn with backoff while the peer is down, then completes', async () => {
    peer.calls = [];
    peer.down = 4;
    const { id, handle } = await command();
    await t.env.sleep('5 minutes');
    await phase(handle, 'watching');
    expect(peer.calls.slice(0, 5)).toEqual(Array(5).fill('agent.spawn'));
    expect(peer.statuses(id)).toEqual(['spawning', 'starting', 'running']);
    await handle.signal(killRemoteAgentSignal, { reason: 'peer_removed' });
    expect(await handle.result()).toMatchObject({ phase: 'done', report: { status: 'removed' } });
    await keepHistory(handle, 'federationCommand-peer-down');
  });

  it('records a peer over its agent limit as refused, with the peer\'s reason, and ends', async () => {
    peer.limitReached = true;
    try {
      const { id, handle } = await command();
      expect(await handle.result()).toMatchObject({ phase: 'done', lastError: expect.stringMatching(/^peer_agent_limit: .*at most 1 agent/) });
      const last = peer.records.filter((r) => r.id === id).at(-1);
      expect(last).toMatchObject({ status: 'refused', statusReason: expect.stringContaining('peer_agent_limit') });
      expect(await scheduledActivities(handle)).toEqual(['recordFederatedAgent', 'sendFederationCommand', 'recordFederatedAgent', 'recordFederationEvent']);
      await keepHistory(handle, 'federationCommand-refused');
    } finally {
      peer.limitReached = false;
    }
  });

  it('a kill that arrives while the spawn is being retried cancels it and kills', async () => {
    peer.calls = [];
    peer.down = 1000;
    const { id, handle } = await command();
    await waitFor(() => peer.calls.length >= 1, 'the first spawn attempt');
    await handle.signal(killRemoteAgentSignal, { reason: 'admin_request' });
    peer.down = 0;
    expect(await handle.result()).toMatchObject({ phase: 'done', report: { status: 'removed' } });
    expect(peer.statuses(id)).toEqual(['spawning', 'stopping', 'removed']);
    expect(peer.calls.at(-1)).toBe('agent.kill');
  });

  it('retireAgent stops the agent through its lifecycle, ends it, removes container and volume, then the row', async () => {
    const agentId = randomUUID();
    const handle = await t.client.workflow.start<RetireAgentWorkflow>(RETIRE_AGENT_WORKFLOW, {
      taskQueue: t.taskQueue,
      workflowId: retireAgentWorkflowId(agentId),
      args: [{ agentId, dockerHostId: t.hostId, reason: 'federation_kill' }],
    });
    expect(await handle.result()).toEqual({ agentId, removed: true });
    expect(retired).toEqual(['stop', 'end lifecycle', `remove hangar-agent-${agentId}`, `remove hangar-agent-${agentId}-data`, 'delete row']);
    await keepHistory(handle, 'retireAgent');
  });
});
