import { defineQuery, defineSignal } from '@temporalio/workflow';

// Federation's contract: the commands one Hangar (the hub) sends another (a
// spoke), what the spoke answers, and the two workflows — `federationCommand`
// on the hub (one per remote agent) and `retireAgent` on the spoke (stop and
// remove one agent). No I/O here: workflow code imports this file.

export const FEDERATION_COMMAND_WORKFLOW = 'federationCommand';
export const RETIRE_AGENT_WORKFLOW = 'retireAgent';
/** One hub workflow per remote agent: its id is the business key. */
export const federationWorkflowId = (peerId: string, federatedAgentId: string) => `federation/${peerId}/${federatedAgentId}`;
export const retireAgentWorkflowId = (agentId: string) => `retire-agent/${agentId}`;

export const COMMAND_TYPES = ['agent.spawn', 'agent.status', 'agent.kill'] as const;
export type CommandType = (typeof COMMAND_TYPES)[number];

/** The body of `POST /api/federation/commands`, signed by the sender. */
export interface CommandEnvelope {
  /** The sender's id of this command (retries of one command share it). */
  id: string;
  /** The sender's instance id: must be the signature's keyid. */
  from: string;
  type: CommandType;
  payload: SpawnPayload | AgentRefPayload;
}

/**
 * Everything a hub tells a spoke about an agent: the hub's id for it (the
 * spoke's idempotency key), a display name and a model preference. No user,
 * no key, no chat.
 */
export interface SpawnPayload {
  ref: string;
  name: string;
  primaryModel?: string | null;
}

export interface AgentRefPayload {
  ref: string;
}

/** An agent's status as the spoke reports it; `removed`: the spoke has no such agent (any more). */
export type RemoteAgentStatus = 'stopped' | 'starting' | 'running' | 'stopping' | 'updating' | 'error' | 'removed';

export interface RemoteAgentReport {
  ref: string;
  remoteAgentId: string | null;
  status: RemoteAgentStatus;
  statusReason: string | null;
}

/** The spoke's answer to every accepted command. */
export interface CommandAnswer {
  id: string;
  type: CommandType;
  agent: RemoteAgentReport;
}

/** The hub's record of a remote agent (federated_agents.status). */
export type FederatedAgentStatus =
  | 'pending'
  | 'spawning'
  | 'starting'
  | 'running'
  | 'stopped'
  | 'error'
  | 'refused'
  | 'stopping'
  | 'removed';

/** Failure types a peer's refusal carries into the workflow (its error code). */
export const PEER_AGENT_LIMIT = 'peer_agent_limit';
export const PEER_UNREACHABLE = 'peer_unreachable';

export interface FederationSettings {
  /** How often a running remote agent's status is refreshed. */
  statusIntervalSec: number;
  /** How long a spawned agent may take to be running before the hub calls it failed. */
  followTimeoutSec: number;
  /** How long a spawn or kill keeps retrying a peer that does not answer. */
  giveUpAfterSec: number;
}

export const DEFAULT_FEDERATION_SETTINGS: FederationSettings = { statusIntervalSec: 60, followTimeoutSec: 600, giveUpAfterSec: 24 * 3600 };

export type FederationPhase = 'spawning' | 'following' | 'watching' | 'killing' | 'done';

export interface FederationCommandState {
  federatedAgentId: string;
  phase: FederationPhase;
  report: RemoteAgentReport | null;
  killReason: string | null;
  lastError: string | null;
}

export interface FederationCommandInput {
  federatedAgentId: string;
  peerId: string;
  name: string;
  primaryModel: string | null;
  settings?: Partial<FederationSettings>;
  /** Carried across continue-as-new. */
  state?: FederationCommandState;
}

export type FederationCommandWorkflow = (input: FederationCommandInput) => Promise<FederationCommandState>;

/** Stop the remote agent and remove it on the peer (an admin's DELETE, or the peer was removed). */
export const killRemoteAgentSignal = defineSignal<[{ reason: string }]>('kill');
export const federationStateQuery = defineQuery<FederationCommandState>('state');

export interface RetireAgentInput {
  agentId: string;
  dockerHostId: string;
  reason: string;
}

export type RetireAgentWorkflow = (input: RetireAgentInput) => Promise<{ agentId: string; removed: true }>;
