import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { ApplyImageRequest, ApplyImageResult } from './rollout.contract.ts';

// The agent lifecycle's contract: ids, queues, messages and types shared by
// the workflow (which implements it), the activities and the API (which call
// it through the Temporal port). No I/O here: workflow code imports this file.

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
/** `federated`: run here for a federation peer (ownerId is the peer's id). */
export type OwnerKind = 'user' | 'workspace' | 'system' | 'federated';
export const OWNER_KINDS: readonly OwnerKind[] = ['user', 'workspace', 'system', 'federated'];

/** Where a start is, for progress streams (API.md: creating, starting, waiting for health, ready). */
export type StartPhase =
  | 'idle'
  /** Waiting in the API's start queue (not yet a workflow step). */
  | 'queued'
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

/** Why an agent over its storage cap was stopped, or its start refused (statusReason, failure type, error code). */
export const STORAGE_QUOTA_EXCEEDED = 'storage_quota_exceeded';

export interface StopRequest {
  reason: string;
}

export interface ReconcileRequest {
  /**
   * What the reconciler saw in Docker; `unhealthy`: the container runs but
   * failed HANGAR_HEALTH_FAILURES_BEFORE_RESTART health checks in a row.
   */
  observed: 'missing' | 'exited' | 'unhealthy';
  exitCode?: number;
  /** `unhealthy`: the last check's failure, for the log. */
  failure?: string;
}

/** One running agent's health check by fleet-reconcile (its Docker host's worker). */
export interface AgentHealthCheck {
  agentId: string;
  ok: boolean;
  /** What the probe saw: `ready`, a status, a timeout, a refused connection. */
  detail: string;
  /** Docker's HEALTHCHECK status, when the image declares one. */
  dockerHealth: 'healthy' | 'unhealthy' | 'starting' | null;
}

/** The fleet event recorded when the reconciler restarts an agent that stopped answering. */
export const UNHEALTHY_RESTARTED_EVENT = 'agent.unhealthy_restarted';

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
  /**
   * Which start this spec is for (its bootstrap token's). A container made for
   * another start is replaced, never reused: its env holds a spent token.
   */
  startId: string;
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

/**
 * Rows that say their container runs, against what Docker shows: each row
 * whose container is gone (`missing`) or not running (`exited`). Pure, so the
 * reconciler's activity and the workflow tier's fake share the rule.
 */
export function disagreements(
  runningRows: Array<{ id: string; containerName: string }>,
  containers: ContainerObservation[],
): Array<{ agentId: string; request: ReconcileRequest }> {
  const byName = new Map(containers.map((c) => [c.name, c]));
  const out: Array<{ agentId: string; request: ReconcileRequest }> = [];
  for (const row of runningRows) {
    const seen = byName.get(row.containerName);
    if (!seen?.running) out.push({ agentId: row.id, request: { observed: seen ? 'exited' : 'missing' } });
  }
  return out;
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
/** The start a container was made for (ContainerSpec.startId). */
export const LABEL_START = 'dev.hangar.start-id';
export const AGENT_PORT = 18789;

/** Workflow type names, as registered by the worker's bundle. */
export const AGENT_LIFECYCLE_WORKFLOW = 'agentLifecycle';
export const IDLE_REAPER_WORKFLOW = 'idleReaper';
export const FLEET_RECONCILE_WORKFLOW = 'fleetReconcile';

export interface LifecycleSettings {
  restartDebounceMs: number;
  healthTimeoutSec: number;
}

export type AgentLifecycleWorkflow = (input: LifecycleInput & { settings?: LifecycleSettings }) => Promise<void>;

export const ensureRunningUpdate = defineUpdate<LifecycleState, []>('ensureRunning');
export const stopUpdate = defineUpdate<LifecycleState, [StopRequest]>('stop');
export const restartUpdate = defineUpdate<LifecycleState, [StopRequest]>('restart');
export const stateQuery = defineQuery<LifecycleState>('state');
/** From a rollout: move this agent to a new image digest, rolling back image and data on failure. */
export const applyImageUpdate = defineUpdate<ApplyImageResult, [ApplyImageRequest]>('applyImage');
/** A provider or the agent config changed: restart once the burst of changes settles. */
export const configChangedSignal = defineSignal('configChanged');
/** From the idle reaper: stop only if the agent is still idle when we look. */
export const reapIfIdleSignal = defineSignal('reapIfIdle');
/** From the fleet reconciler: Docker disagrees with our state. */
export const reconcileSignal = defineSignal<[ReconcileRequest]>('reconcile');
