// Pure types and ids shared by workflows, activities and the API. No I/O here:
// workflow code imports this file.

export const CONTROL_TASK_QUEUE = 'hangar-control';
export const dockerTaskQueue = (hostId: string) => `docker-${hostId}`;
export const agentWorkflowId = (agentId: string) => `agent/${agentId}`;
export const IDLE_REAPER_SCHEDULE_ID = 'idle-reaper';
export const FLEET_RECONCILE_SCHEDULE_ID = 'fleet-reconcile';

/** Custom search attributes, registered at start so operators can filter. */
export const SEARCH_ATTRIBUTES = {
  agentId: 'HangarAgentId',
  ownerId: 'HangarOwnerId',
} as const;

export type AgentStatus = 'stopped' | 'starting' | 'running' | 'stopping' | 'updating' | 'error';
export type OwnerKind = 'user' | 'workspace' | 'system';

/** Where a start is, for progress streams (API.md: creating, starting, waiting for health, ready). */
export type StartPhase =
  | 'idle'
  | 'creating'
  | 'starting'
  | 'waiting_for_health'
  | 'ready'
  | 'stopping'
  | 'failed'
  | 'snapshotting'
  | 'updating'
  | 'rolling_back';

export interface LifecycleInput {
  agentId: string;
  dockerHostId: string;
  /** System agents: never reaped, and brought back when their container vanishes. */
  alwaysOn?: boolean;
  /** Carried across continue-as-new. */
  state?: LifecycleState;
}

export interface LifecycleState {
  agentId: string;
  dockerHostId: string;
  status: AgentStatus;
  phase: StartPhase;
  containerId: string | null;
  hostPort: number | null;
  lastError: string | null;
  /** The image id the container runs, once known. */
  imageDigest?: string | null;
  /** Bumped by every completed start; lets callers see a restart happened. */
  generation: number;
  restartPending: boolean;
}

export interface StopRequest {
  reason: string;
}

export interface ReconcileRequest {
  /** What the reconciler saw in Docker. */
  observed: 'missing' | 'exited';
  exitCode?: number;
}

/** What the Docker activities need to run one agent's container. */
export interface ContainerSpec {
  agentId: string;
  instanceId: string;
  ownerKind: OwnerKind;
  ownerId: string;
  containerName: string;
  volumeName: string;
  image: string;
  network: string;
  env: Record<string, string>;
  /** Ciphertexts (enc:v1:...) decrypted only inside the Docker activity, so no plaintext lands in workflow history. */
  secretEnv: Record<string, string>;
  memoryMb: number;
  /** Size of the /tmp tmpfs (OpenClaw keeps its config and logs there). */
  tmpfsMb?: number;
  cpus: number;
  pids: number;
  healthTimeoutSec: number;
}

export interface ContainerObservation {
  name: string;
  id: string;
  agentId: string | null;
  running: boolean;
  exitCode: number | null;
}

/** Deterministic names make every Docker step "create if absent". */
export const agentContainerName = (agentId: string) => `hangar-agent-${agentId}`;
export const agentVolumeName = (agentId: string) => `hangar-agent-${agentId}-data`;
/** Labels mark what Hangar owns, so the reconciler never touches anything else. */
export const LABEL_MANAGED = 'dev.hangar.managed';
export const LABEL_AGENT_ID = 'dev.hangar.agent-id';
export const LABEL_OWNER = 'dev.hangar.owner';
/** Which Hangar installation owns a container: two on one engine never reap each other's. */
export const LABEL_INSTANCE = 'dev.hangar.instance';
export const AGENT_PORT = 18789;
