import { defineQuery, defineSignal } from '@temporalio/workflow';

// Teams: workspace roles, and the contract of member provisioning (the
// `memberProvisioning` workflow pushes every membership change into the
// workspace's agent; `memberDrift` runs from a schedule and has every
// workspace with a running agent compared again). No I/O here: workflow code
// imports this file.

export const WORKSPACE_ROLES = ['owner', 'admin', 'member', 'viewer'] as const;
export type WorkspaceRole = (typeof WORKSPACE_ROLES)[number];

/** Higher is more: an owner may do whatever an admin may, and so on down to viewers (read only). */
export const ROLE_RANK: Record<WorkspaceRole, number> = { viewer: 0, member: 1, admin: 2, owner: 3 };
export const atLeast = (role: WorkspaceRole, need: WorkspaceRole) => ROLE_RANK[role] >= ROLE_RANK[need];

/** One workflow per workspace: every change to its members is pushed in order, one sync at a time. */
export const memberProvisioningWorkflowId = (workspaceId: string) => `provision/${workspaceId}`;
export const MEMBER_PROVISIONING_WORKFLOW = 'memberProvisioning';
export const MEMBER_DRIFT_WORKFLOW = 'memberDrift';
export const MEMBER_DRIFT_SCHEDULE_ID = 'member-drift';

/** A member as the workspace's agent knows them. */
export interface AgentMember {
  userId: string;
  email: string | null;
  displayName: string;
  role: WorkspaceRole;
}

/** Where to push, and what: read from the database (the truth) at the start of every sync. */
export interface MemberSyncPlan {
  workspaceId: string;
  /** Archived workspaces are not synced (their agent is stopped). */
  archived: boolean;
  members: AgentMember[];
  /** null: the workspace has no running agent; it is synced when the agent starts. */
  agent: { agentId: string; dockerHostId: string; port: number; sealedToken: string } | null;
}

/** What one push did. `supported: false`: the agent's runtime has no member endpoint (OpenClaw). */
export interface MemberPushResult {
  supported: boolean;
  added: string[];
  changed: string[];
  removed: string[];
  /** The agent's list after the push. */
  members: AgentMember[];
}

export type ProvisioningStatus = 'idle' | 'syncing' | 'retrying' | 'waiting_for_agent' | 'unsupported';

export interface ProvisioningState {
  workspaceId: string;
  status: ProvisioningStatus;
  /** Failed pushes in a row (the backoff grows with it). */
  attempts: number;
  lastError: string | null;
  syncs: number;
}

export interface MemberProvisioningInput {
  workspaceId: string;
  /** A sync is owed (carried across continue-as-new; a new run starts with one). */
  pending?: boolean;
  syncs?: number;
}

export type MemberProvisioningWorkflow = (input: MemberProvisioningInput) => Promise<void>;
export type MemberDriftWorkflow = () => Promise<{ workspaces: number }>;

/** Something changed (a membership, the agent started, the drift check): sync again. */
export const syncMembersSignal = defineSignal<[{ reason: string }]>('syncMembers');
export const provisioningStateQuery = defineQuery<ProvisioningState>('provisioningState');

/** Backoff between failed pushes: 5 s, doubling, at most 5 minutes. */
export function provisionBackoffMs(attempt: number): number {
  return Math.min(5000 * 2 ** Math.max(0, attempt - 1), 300_000);
}

/** What to PUT and DELETE so that the agent's list becomes the desired one. */
export function diffMembers(desired: AgentMember[], actual: AgentMember[]): { put: AgentMember[]; remove: string[]; added: string[]; changed: string[] } {
  const have = new Map(actual.map((m) => [m.userId, m]));
  const want = new Set(desired.map((m) => m.userId));
  const put: AgentMember[] = [];
  const added: string[] = [];
  const changed: string[] = [];
  for (const m of desired) {
    const h = have.get(m.userId);
    if (!h) added.push(m.userId);
    else if (h.role !== m.role || h.email !== m.email || h.displayName !== m.displayName) changed.push(m.userId);
    else continue;
    put.push(m);
  }
  const remove = actual.filter((m) => !want.has(m.userId)).map((m) => m.userId);
  return { put, remove, added, changed };
}
