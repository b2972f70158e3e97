import { randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  diffMembers,
  MEMBER_DRIFT_WORKFLOW,
  MEMBER_PROVISIONING_WORKFLOW,
  memberProvisioningWorkflowId,
  provisioningStateQuery,
  syncMembersSignal,
  type AgentMember,
  type MemberDriftWorkflow,
  type MemberProvisioningWorkflow,
  type MemberPushResult,
  type MemberSyncPlan,
} from '../../core/contracts/workspace.contract.ts';
import { keepHistory, startTier, waitFor, type Tier } from '../support/workflow-tier.harness.ts';

// memberProvisioning on the time-skipping server, its activities faked as a
// database (the members, where the agent answers) and an agent (its member
// list, and whether it answers at all). Backoffs of seconds and the hour after
// which an idle run ends pass in milliseconds.

const member = (userId: string, role: AgentMember['role'] = 'member'): AgentMember => ({ userId, email: `${userId}@x.test`, displayName: userId, role });

class TeamWorld {
  /** The database: members per workspace, and whether the workspace agent runs. */
  members = new Map<string, AgentMember[]>();
  running = new Set<string>();
  /** The agent's own list, per workspace. */
  agentLists = new Map<string, AgentMember[]>();
  /** Pushes that fail (the agent does not answer) before one gets through, per workspace. */
  downFor = new Map<string, number>();
  unsupported = new Set<string>();
  pushes: Array<{ workspaceId: string; ok: boolean; at: number }> = [];
  provisioned: Array<{ workspaceId: string; members: string[] }> = [];
  syncRequests: string[] = [];

  control = {
    memberSyncPlan: async (workspaceId: string): Promise<MemberSyncPlan> => ({
      workspaceId,
      archived: false,
      members: this.members.get(workspaceId) ?? [],
      agent: this.running.has(workspaceId) ? { agentId: `agent-${workspaceId}`, dockerHostId: this.hostId, port: 1, sealedToken: workspaceId } : null,
    }),
    recordMembersProvisioned: async (req: { workspaceId: string; members: AgentMember[] }) => {
      this.provisioned.push({ workspaceId: req.workspaceId, members: req.members.map((m) => `${m.userId}:${m.role}`) });
      return req.members.length;
    },
    workspacesWithRunningAgents: async () => [...this.running],
    requestMemberSync: async (req: { workspaceId: string; reason: string }) => {
      this.syncRequests.push(`${req.workspaceId}:${req.reason}`);
    },
  };

  host = {
    // The fake agent: the sealed token names the workspace, as the real plan carries the agent's own.
    pushAgentMembers: async (req: { port: number; sealedToken: string; members: AgentMember[] }): Promise<MemberPushResult> => {
      const ws = req.sealedToken;
      const left = this.downFor.get(ws) ?? 0;
      if (left > 0) {
        this.downFor.set(ws, left - 1);
        this.pushes.push({ workspaceId: ws, ok: false, at: Date.now() });
        throw ApplicationFailure.retryable('connect ECONNREFUSED 127.0.0.1:1', 'agent_members_failed');
      }
      this.pushes.push({ workspaceId: ws, ok: true, at: Date.now() });
      if (this.unsupported.has(ws)) return { supported: false, added: [], changed: [], removed: [], members: [] };
      const diff = diffMembers(req.members, this.agentLists.get(ws) ?? []);
      this.agentLists.set(ws, [...req.members]);
      return { supported: true, added: diff.added, changed: diff.changed, removed: diff.remove, members: [...req.members] };
    },
  };

  constructor(public hostId: string) {}
}

describe('memberProvisioning and memberDrift (time-skipping)', () => {
  const world = new TeamWorld('host-members');
  let t: Tier;

  beforeAll(async () => {
    t = await startTier({ name: 'members', hostId: world.hostId, control: world.control as never, host: world.host as never });
  });
  afterAll(async () => {
    await t?.shutdown();
  });

  const start = (workspaceId: string) =>
    t.client.workflow.start<MemberProvisioningWorkflow>(MEMBER_PROVISIONING_WORKFLOW, {
      taskQueue: t.taskQueue,
      workflowId: memberProvisioningWorkflowId(workspaceId),
      args: [{ workspaceId }],
    });

  it('retries with backoff while the agent is down during an add, and provisions the member when it answers again', async () => {
    const ws = randomUUID();
    world.running.add(ws);
    world.members.set(ws, [member('owner', 'owner'), member('new-member')]);
    world.agentLists.set(ws, [member('owner', 'owner')]);
    // Two rounds of three tries each fail, then the agent is back.
    world.downFor.set(ws, 6);
    const handle = await start(ws);
    // Nothing else owed: after the push the run waits an hour for news, then ends.
    await handle.result();
    const pushes = world.pushes.filter((p) => p.workspaceId === ws);
    expect(pushes.map((p) => p.ok)).toEqual([false, false, false, false, false, false, true]);
    expect(world.agentLists.get(ws)!.map((m) => m.userId)).toEqual(['owner', 'new-member']);
    expect(world.provisioned.filter((p) => p.workspaceId === ws)).toEqual([{ workspaceId: ws, members: ['owner:owner', 'new-member:member'] }]);
    // The waits between rounds are workflow timers of 5 s, then 10 s (the activity's own retries in between).
    const timers = ((await handle.fetchHistory()).events ?? [])
      .map((e) => e.timerStartedEventAttributes?.startToFireTimeout?.seconds)
      .filter((s) => s != null)
      .map(Number);
    expect(timers.slice(0, 2)).toEqual([5, 10]);
    await keepHistory(handle, 'memberProvisioning-agent-down');
  });

  it('waits for a stopped agent, syncs when its start signals, and folds changes made meanwhile into one push', async () => {
    const ws = randomUUID();
    world.members.set(ws, [member('owner', 'owner')]);
    const handle = await start(ws);
    await waitFor(async () => (await handle.query(provisioningStateQuery)).status === 'waiting_for_agent', 'the run to wait for the agent');
    expect(world.pushes.some((p) => p.workspaceId === ws)).toBe(false);
    // Two changes while it is stopped, then the agent starts.
    world.members.set(ws, [member('owner', 'owner'), member('a', 'viewer'), member('b')]);
    world.agentLists.set(ws, [member('owner', 'owner'), member('gone')]);
    world.running.add(ws);
    await handle.signal(syncMembersSignal, { reason: 'agent started' });
    await handle.result();
    expect(world.pushes.filter((p) => p.workspaceId === ws)).toHaveLength(1);
    expect(world.agentLists.get(ws)!.map((m) => `${m.userId}:${m.role}`)).toEqual(['owner:owner', 'a:viewer', 'b:member']);
    await keepHistory(handle, 'memberProvisioning-waiting-for-agent');
  });

  it('stops pushing to a runtime without a member list, and says so', async () => {
    const ws = randomUUID();
    world.running.add(ws);
    world.unsupported.add(ws);
    world.members.set(ws, [member('owner', 'owner')]);
    const handle = await start(ws);
    await waitFor(async () => (await handle.query(provisioningStateQuery)).status === 'unsupported', 'the run to find no member endpoint');
    await handle.result();
    expect(world.provisioned.some((p) => p.workspaceId === ws)).toBe(false);
  });

  it('memberDrift asks every workspace with a running agent to compare and repair', async () => {
    const before = world.syncRequests.length;
    const handle = await t.client.workflow.start<MemberDriftWorkflow>(MEMBER_DRIFT_WORKFLOW, { taskQueue: t.taskQueue, workflowId: `member-drift/${randomUUID()}` });
    expect(await handle.result()).toEqual({ workspaces: world.running.size });
    expect(world.syncRequests.slice(before).sort()).toEqual([...world.running].map((ws) => `${ws}:drift check`).sort());
    await keepHistory(handle, 'memberDrift');
  });
});
