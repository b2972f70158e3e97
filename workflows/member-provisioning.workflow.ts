import { condition, continueAsNew, log, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { createMemberActivities } from '../activities/member.activities.ts';
import type { createMemberPushActivities } from '../activities/member-push.activities.ts';
import { dockerTaskQueue } from '../core/contracts/agent.contract.ts';
import { rootMessage } from '../core/contracts/failures.contract.ts';
import {
  provisionBackoffMs,
  provisioningStateQuery,
  syncMembersSignal,
  type MemberDriftWorkflow,
  type MemberProvisioningWorkflow,
  type ProvisioningState,
} from '../core/contracts/workspace.contract.ts';

const control = proxyActivities<ReturnType<typeof createMemberActivities>>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 10 },
});

/** With nothing owed for this long, the run ends; the next change starts a new one. */
const IDLE_END = '1 hour';
/** Syncs per run before continuing as new (history stays short). */
const SYNCS_PER_RUN = 100;

/**
 * `provision/<workspaceId>`: the one writer of a workspace agent's member
 * list. Every signal asks for a sync; a sync reads the members from the
 * database (the truth) and makes the agent's list equal to it, so changes
 * made while a push was failing are never lost or reordered, and drift is
 * repaired the same way. While the agent does not answer, the push is retried
 * with a growing backoff (5 s … 5 min), re-reading where the agent is each
 * time; a workspace without a running agent waits for the signal its start
 * sends.
 */
export const memberProvisioning: MemberProvisioningWorkflow = async (input) => {
  let pending = input.pending ?? true;
  let nudged = false;
  const state: ProvisioningState = { workspaceId: input.workspaceId, status: 'idle', attempts: 0, lastError: null, syncs: input.syncs ?? 0 };
  setHandler(syncMembersSignal, () => {
    pending = true;
    nudged = true;
  });
  setHandler(provisioningStateQuery, () => state);

  for (let round = 0; ; round++) {
    if (!pending && !(await condition(() => pending, IDLE_END))) return;
    if (round >= SYNCS_PER_RUN || workflowInfo().continueAsNewSuggested) {
      return continueAsNew<MemberProvisioningWorkflow>({ workspaceId: input.workspaceId, pending: true, syncs: state.syncs });
    }
    pending = false;
    nudged = false;
    state.status = 'syncing';
    const plan = await control.memberSyncPlan(input.workspaceId);
    if (plan.archived || !plan.agent) {
      state.status = 'waiting_for_agent';
      state.attempts = 0;
      continue;
    }
    const host = proxyActivities<ReturnType<typeof createMemberPushActivities>>({
      taskQueue: dockerTaskQueue(plan.agent.dockerHostId),
      startToCloseTimeout: '1 minute',
      // A few quick tries with the same address; then the workflow backs off and looks again.
      retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '4 seconds', maximumAttempts: 3 },
    });
    try {
      const pushed = await host.pushAgentMembers({ port: plan.agent.port, sealedToken: plan.agent.sealedToken, members: plan.members });
      state.syncs++;
      state.attempts = 0;
      state.lastError = null;
      if (!pushed.supported) {
        state.status = 'unsupported';
        continue;
      }
      await control.recordMembersProvisioned({ workspaceId: input.workspaceId, members: pushed.members });
      state.status = 'idle';
      if (pushed.added.length || pushed.changed.length || pushed.removed.length) {
        log.info('members provisioned', { workspaceId: input.workspaceId, added: pushed.added.length, changed: pushed.changed.length, removed: pushed.removed.length });
      }
    } catch (err) {
      state.attempts++;
      state.status = 'retrying';
      state.lastError = rootMessage(err);
      pending = true;
      // Woken early by a signal (the agent started, another change): then it tries at once.
      await condition(() => nudged, provisionBackoffMs(state.attempts));
    }
  }
};

/**
 * Run by the `member-drift` schedule: every workspace with a running agent is
 * asked to sync, which compares the agent's list with the database and
 * repairs whatever differs (a member added, removed or changed behind
 * Hangar's back, or a push that never happened).
 */
export const memberDrift: MemberDriftWorkflow = async () => {
  const ids = await control.workspacesWithRunningAgents();
  for (const workspaceId of ids) await control.requestMemberSync({ workspaceId, reason: 'drift check' });
  return { workspaces: ids.length };
};
