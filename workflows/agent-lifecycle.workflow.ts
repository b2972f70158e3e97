import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { createAgentActivities } from '../activities/agent.activities.ts';
import type { createDockerActivities } from '../activities/docker.activities.ts';
import type { ApplyImageRequest } from '../core/contracts/rollout.contract.ts';
import { applyImage } from './apply-image.step.ts';
import {
  agentContainerName,
  applyImageUpdate,
  configChangedSignal,
  dockerTaskQueue,
  ensureRunningUpdate,
  reapIfIdleSignal,
  reconcileSignal,
  restartUpdate,
  stateQuery,
  stopUpdate,
  STORAGE_QUOTA_EXCEEDED,
  type AgentLifecycleWorkflow,
  type LifecycleSettings,
  type LifecycleState,
  type StopRequest,
} from '../core/contracts/agent.contract.ts';
import { rootFailureType, rootMessage } from '../core/contracts/failures.contract.ts';

type AgentActivities = ReturnType<typeof createAgentActivities>;
type DockerActivities = ReturnType<typeof createDockerActivities>;

const control = proxyActivities<AgentActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '500 ms', maximumInterval: '10 seconds', maximumAttempts: 10 },
});

/**
 * Short database steps (a row write, the start's spec) run as local
 * activities: inside the workflow task, with no task-queue round trip of
 * their own. Same retries; a worker that dies mid-way runs them again (they
 * are idempotent writes, as before).
 */
const local = proxyLocalActivities<AgentActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '500 ms', maximumInterval: '10 seconds', maximumAttempts: 10 },
});

/** Patch ids (README, "Changing a workflow"): runs begun before each change replay their old steps. */
const LOCAL_DB_STEPS = 'local-db-steps';
const ONE_STEP_START = 'one-step-start';
const UNHEALTHY_RESTART = 'unhealthy-restart';

const DEFAULT_SETTINGS: LifecycleSettings = { restartDebounceMs: 3000, healthTimeoutSec: 120 };

/**
 * The only writer of one agent's container and row. Every change is queued
 * through `exclusive`, so a user's start, an admin's restart and the reaper's
 * stop never interleave.
 */
export const agentLifecycle: AgentLifecycleWorkflow = async (input) => {
  const settings = { ...DEFAULT_SETTINGS, ...input.settings };
  const state: LifecycleState = input.state ?? {
    agentId: input.agentId,
    dockerHostId: input.dockerHostId,
    status: 'stopped',
    phase: 'idle',
    containerId: null,
    hostPort: null,
    lastError: null,
    generation: 0,
    restartPending: false,
  };

  const docker = proxyActivities<DockerActivities>({
    taskQueue: dockerTaskQueue(state.dockerHostId),
    startToCloseTimeout: '2 minutes',
    heartbeatTimeout: '20 seconds',
    retry: { initialInterval: '1 second', maximumInterval: '15 seconds', maximumAttempts: 8 },
  });

  // FIFO lock: promise chaining is deterministic inside the workflow sandbox.
  let tail: Promise<unknown> = Promise.resolve();
  let inFlight = 0;
  function exclusive<T>(fn: () => Promise<T>): Promise<T> {
    inFlight++;
    const run = tail.then(fn);
    tail = run.then(
      () => inFlight--,
      () => inFlight--,
    );
    return run;
  }

  const rowOf = (reason?: string | null, imageDigest?: string) => ({
    status: state.status,
    containerId: state.containerId,
    gatewayPort: state.hostPort,
    statusReason: reason ?? null,
    ...(imageDigest ? { imageDigest } : {}),
  });

  async function record(patch: Partial<LifecycleState>, reason?: string | null, imageDigest?: string): Promise<void> {
    Object.assign(state, patch);
    await (patched(LOCAL_DB_STEPS) ? local : control).recordAgentState(state.agentId, rowOf(reason, imageDigest));
  }

  // Its own timeout: OpenClaw's first boot can outlast the other Docker steps' two minutes.
  const health = proxyActivities<DockerActivities>({
    taskQueue: dockerTaskQueue(state.dockerHostId),
    startToCloseTimeout: `${settings.healthTimeoutSec + 60} seconds`,
    heartbeatTimeout: '20 seconds',
    retry: { initialInterval: '1 second', maximumInterval: '15 seconds', maximumAttempts: 8 },
  });

  /**
   * Three round trips through Temporal where there were six: the row and the
   * spec in one local activity, the container made, started and answering in
   * one Docker activity, the row again (local).
   */
  async function launch(): Promise<string> {
    state.phase = 'creating';
    Object.assign(state, { status: 'starting', lastError: null });
    // Refuses an agent over its storage cap; mints this start's bootstrap token.
    const spec = await local.beginAgentStart(state.agentId, rowOf());
    state.phase = 'starting';
    const { containerId, imageId, hostPort } = await health.launchContainer({ spec, timeoutSec: settings.healthTimeoutSec });
    Object.assign(state, { containerId, hostPort, imageDigest: imageId });
    return imageId;
  }

  /** The start as runs begun before ONE_STEP_START issued it, one activity per step. */
  async function launchStepByStep(): Promise<string> {
    state.phase = 'creating';
    await record({ status: 'starting', lastError: null });
    // Refuses an agent over its storage cap; mints this start's bootstrap token.
    const spec = await control.getContainerSpec(state.agentId, 'start');
    const { containerId, imageId } = await docker.ensureContainer(spec);
    state.imageDigest = imageId;
    state.phase = 'starting';
    const { hostPort } = await docker.startContainer(spec.containerName);
    state.phase = 'waiting_for_health';
    Object.assign(state, { containerId, hostPort });
    await health.waitHealthy({ containerName: spec.containerName, hostPort, timeoutSec: settings.healthTimeoutSec });
    return imageId;
  }

  async function start(): Promise<void> {
    try {
      const imageId = patched(ONE_STEP_START) ? await launch() : await launchStepByStep();
      state.phase = 'ready';
      state.generation++;
      await record({ status: 'running' }, null, imageId);
    } catch (err) {
      const message = rootMessage(err);
      if (rootFailureType(err) === STORAGE_QUOTA_EXCEEDED) {
        // Refused before anything was created: the agent stays stopped, and says why.
        state.phase = 'idle';
        await record({ status: 'stopped', lastError: message, hostPort: null }, STORAGE_QUOTA_EXCEEDED);
        throw ApplicationFailure.nonRetryable(message, STORAGE_QUOTA_EXCEEDED);
      }
      log.warn('agent start failed', { agentId: state.agentId, message });
      state.phase = 'failed';
      // Leave nothing half-started behind: a crash-looping container would burn CPU.
      await docker.stopContainer({ containerName: containerNameOf(state) }).catch(() => undefined);
      await record({ status: 'error', lastError: message, hostPort: null }, message);
      throw ApplicationFailure.nonRetryable(`The agent could not start: ${message}`, 'agent_start_failed');
    }
  }

  async function stop(reason: string): Promise<void> {
    if (state.status === 'stopped') return;
    state.phase = 'stopping';
    await record({ status: 'stopping' });
    try {
      await docker.stopContainer({ containerName: containerNameOf(state) });
    } catch (err) {
      // Said as what it is: a stop that failed, not a start (the caller asked to stop).
      const message = rootMessage(err);
      state.phase = 'failed';
      await record({ status: 'error', lastError: message }, 'stop_failed');
      throw ApplicationFailure.nonRetryable(`The agent could not stop: ${message}`, 'agent_stop_failed');
    }
    state.phase = 'idle';
    await record({ status: 'stopped', hostPort: null }, reason);
  }

  async function ensureRunning(): Promise<LifecycleState> {
    if (state.status === 'running') {
      const seen = await docker.inspectContainer(containerNameOf(state));
      if (seen?.running) return { ...state };
    }
    await start();
    return { ...state };
  }

  let configChanges = 0;
  setHandler(stateQuery, () => ({ ...state }));
  setHandler(ensureRunningUpdate, () => exclusive(ensureRunning));
  setHandler(
    stopUpdate,
    (req) => exclusive(async () => {
      await stop(req.reason);
      return { ...state };
    }),
    { validator: validateReason },
  );
  setHandler(
    restartUpdate,
    (req) => exclusive(async () => {
      await stop(req.reason);
      await start();
      return { ...state };
    }),
    { validator: validateReason },
  );
  setHandler(
    applyImageUpdate,
    (req) => exclusive(async () => applyImage({
      state,
      spec: await control.getContainerSpec(state.agentId),
      // Every container the update creates (new image, or the rollback) gets its own bootstrap token.
      freshSpec: () => control.getContainerSpec(state.agentId, 'update'),
      record,
      stop,
    }, req)),
    { validator: validateApplyImage },
  );
  setHandler(configChangedSignal, () => {
    configChanges++;
    state.restartPending = true;
  });
  setHandler(reapIfIdleSignal, () => {
    void exclusive(async () => {
      if (state.status !== 'running') return;
      if (await (patched(LOCAL_DB_STEPS) ? local : control).isAgentIdle(state.agentId)) await stop('idle');
    }).catch((err) => log.warn('reap failed', { message: rootMessage(err) }));
  });
  setHandler(reconcileSignal, (req) => {
    void exclusive(async () => {
      if (state.status !== 'running') return;
      const seen = await docker.inspectContainer(containerNameOf(state));
      if (seen?.running) {
        // Running but not answering its health checks: restarted here, under
        // the lock, so whatever a user queued first (a stop, a restart) wins.
        // Patched: runs begun before ignored a running container (they were never told `unhealthy`).
        if (req.observed !== 'unhealthy' || !patched(UNHEALTHY_RESTART)) return;
        log.warn('restarting unhealthy agent', { agentId: state.agentId, failure: req.failure });
        await stop('unhealthy');
        await start();
        return;
      }
      if (!seen && !input.alwaysOn) {
        // Gone behind our back: the row says stopped; the next chat recreates it on the same volume.
        await record({ status: 'stopped', containerId: null, hostPort: null, phase: 'idle' }, 'container_missing');
      } else {
        log.info('restarting agent', { agentId: state.agentId, exitCode: seen?.exitCode, observed: req.observed });
        await start();
      }
    }).catch((err) => log.warn('reconcile failed', { message: rootMessage(err) }));
  });

  for (;;) {
    await condition(() => state.restartPending || workflowInfo().continueAsNewSuggested);
    if (!state.restartPending) break;
    // Debounce: several changes within the window cause one restart.
    let seen = configChanges;
    for (let i = 0; i < 100; i++) {
      await sleep(settings.restartDebounceMs);
      if (seen === configChanges) break;
      seen = configChanges;
    }
    state.restartPending = false;
    await exclusive(async () => {
      if (state.status !== 'running') return;
      await stop('config_changed');
      await start();
    }).catch((err) => log.warn('config restart failed', { message: rootMessage(err) }));
  }

  await condition(() => inFlight === 0 && allHandlersFinished());
  await continueAsNew<AgentLifecycleWorkflow>({ ...input, state });
};

function containerNameOf(state: LifecycleState): string {
  return agentContainerName(state.agentId);
}

function validateReason(req: StopRequest): void {
  if (!req || typeof req.reason !== 'string' || req.reason.length > 200) {
    throw ApplicationFailure.nonRetryable('reason must be a string of at most 200 characters', 'invalid_input');
  }
}

function validateApplyImage(req: ApplyImageRequest): void {
  if (!req || typeof req.rolloutId !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(String(req.toDigest))) {
    throw ApplicationFailure.nonRetryable('applyImage needs a rolloutId and a sha256 image digest', 'invalid_input');
  }
  if (!(req.healthTimeoutSec >= 5 && req.healthTimeoutSec <= 3600) || !(req.healthPollMs >= 50 && req.healthPollMs <= 60_000)) {
    throw ApplicationFailure.nonRetryable('healthTimeoutSec must be 5..3600 and healthPollMs 50..60000', 'invalid_input');
  }
}
