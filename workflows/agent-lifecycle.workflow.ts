import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  defineUpdate,
  log,
  proxyActivities,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { createAgentActivities } from '../activities/agent.activities.ts';
import type { createDockerActivities } from '../activities/docker.activities.ts';
import type { ApplyImageRequest, ApplyImageResult } from '../core/contracts/rollout.contract.ts';
import { applyImage } from './apply-image.step.ts';
import {
  agentContainerName,
  dockerTaskQueue,
  type LifecycleInput,
  type LifecycleState,
  type ReconcileRequest,
  type StopRequest,
} from '../core/contracts/agent.contract.ts';

// Signals, updates and queries of the agent lifecycle live beside it.
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

type AgentActivities = ReturnType<typeof createAgentActivities>;
type DockerActivities = ReturnType<typeof createDockerActivities>;

const control = proxyActivities<AgentActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '500 ms', maximumInterval: '10 seconds', maximumAttempts: 10 },
});

export interface LifecycleSettings {
  restartDebounceMs: number;
  healthTimeoutSec: number;
}

const DEFAULT_SETTINGS: LifecycleSettings = { restartDebounceMs: 3000, healthTimeoutSec: 120 };

/**
 * The only writer of one agent's container and row. Every change is queued
 * through `exclusive`, so a user's start, an admin's restart and the reaper's
 * stop never interleave.
 */
export async function agentLifecycle(input: LifecycleInput & { settings?: LifecycleSettings }): Promise<void> {
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

  async function record(patch: Partial<LifecycleState>, reason?: string | null, imageDigest?: string): Promise<void> {
    Object.assign(state, patch);
    await control.recordAgentState(state.agentId, {
      status: state.status,
      containerId: state.containerId,
      gatewayPort: state.hostPort,
      statusReason: reason ?? null,
      ...(imageDigest ? { imageDigest } : {}),
    });
  }

  async function start(): Promise<void> {
    try {
      state.phase = 'creating';
      await record({ status: 'starting', lastError: null });
      const spec = await control.getContainerSpec(state.agentId);
      const { containerId, imageId } = await docker.ensureContainer(spec);
      state.imageDigest = imageId;
      state.phase = 'starting';
      const { hostPort } = await docker.startContainer(spec.containerName);
      state.phase = 'waiting_for_health';
      Object.assign(state, { containerId, hostPort });
      // Its own timeout: OpenClaw's first boot can outlast the other Docker steps' two minutes.
      const health = proxyActivities<DockerActivities>({
        taskQueue: dockerTaskQueue(state.dockerHostId),
        startToCloseTimeout: `${settings.healthTimeoutSec + 60} seconds`,
        heartbeatTimeout: '20 seconds',
        retry: { initialInterval: '1 second', maximumInterval: '15 seconds', maximumAttempts: 8 },
      });
      await health.waitHealthy({ containerName: spec.containerName, hostPort, timeoutSec: settings.healthTimeoutSec });
      state.phase = 'ready';
      state.generation++;
      await record({ status: 'running' }, null, imageId);
    } catch (err) {
      const message = failureMessage(err);
      log.warn('agent start failed', { agentId: state.agentId, message });
      state.phase = 'failed';
      // Leave nothing half-started behind: a crash-looping container would burn CPU.
      await docker.stopContainer({ containerName: containerNameOf(state) }).catch(() => undefined);
      await record({ status: 'error', lastError: message, hostPort: null }, message);
      throw ApplicationFailure.nonRetryable(message, 'agent_start_failed');
    }
  }

  async function stop(reason: string): Promise<void> {
    if (state.status === 'stopped') return;
    state.phase = 'stopping';
    await record({ status: 'stopping' });
    await docker.stopContainer({ containerName: containerNameOf(state) });
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
      record,
      stop,
      failureMessage,
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
      if (await control.isAgentIdle(state.agentId)) await stop('idle');
    }).catch((err) => log.warn('reap failed', { message: failureMessage(err) }));
  });
  setHandler(reconcileSignal, (req) => {
    void exclusive(async () => {
      if (state.status !== 'running') return;
      const seen = await docker.inspectContainer(containerNameOf(state));
      if (seen?.running) return;
      if (!seen && !input.alwaysOn) {
        // Gone behind our back: the row says stopped; the next chat recreates it on the same volume.
        await record({ status: 'stopped', containerId: null, hostPort: null, phase: 'idle' }, 'container_missing');
      } else {
        log.info('restarting agent', { agentId: state.agentId, exitCode: seen?.exitCode, observed: req.observed });
        await start();
      }
    }).catch((err) => log.warn('reconcile failed', { message: failureMessage(err) }));
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
    }).catch((err) => log.warn('config restart failed', { message: failureMessage(err) }));
  }

  await condition(() => inFlight === 0 && allHandlersFinished());
  await continueAsNew<typeof agentLifecycle>({ ...input, state });
}

function containerNameOf(state: LifecycleState): string {
  return agentContainerName(state.agentId);
}

function validateReason(req: StopRequest): void {
  if (!req || typeof req.reason !== 'string' || req.reason.length > 200) {
    throw new Error('reason must be a string of at most 200 characters');
  }
}

function validateApplyImage(req: ApplyImageRequest): void {
  if (!req || typeof req.rolloutId !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(String(req.toDigest))) {
    throw new Error('applyImage needs a rolloutId and a sha256 image digest');
  }
  if (!(req.healthTimeoutSec >= 5 && req.healthTimeoutSec <= 3600) || !(req.healthPollMs >= 50 && req.healthPollMs <= 60_000)) {
    throw new Error('healthTimeoutSec must be 5..3600 and healthPollMs 50..60000');
  }
}

function failureMessage(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  // Activity failures wrap the real reason in `cause`.
  while (e?.cause) e = e.cause as typeof e;
  return e?.message ?? String(err);
}
