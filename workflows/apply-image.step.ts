import { log, patched, proxyActivities } from '@temporalio/workflow';
import type { createDockerActivities } from '../activities/docker.activities.ts';
import type { createImageUpdateActivities } from '../activities/image-update.activities.ts';
import { dockerTaskQueue, type ContainerSpec, type LifecycleState } from '../core/contracts/agent.contract.ts';
import { SNAPSHOT_NO_SPACE, type ApplyImageRequest, type ApplyImageResult } from '../core/contracts/rollout.contract.ts';
import { rootFailureType, rootMessage } from '../core/contracts/failures.contract.ts';

// applyImage runs inside the agent's lifecycle (under its lock), so an update
// never races a user's restart or the reaper. Every step is its own activity:
// after a crash the workflow resumes at the step it was on, and each step is
// idempotent if it ran half-way.

type DockerActivities = ReturnType<typeof createDockerActivities>;
type ImageActivities = ReturnType<typeof createImageUpdateActivities>;

export interface ApplyImageContext {
  state: LifecycleState;
  /** Names and labels (restore); containers are made from freshSpec(). */
  spec: ContainerSpec;
  /** A spec with a new bootstrap token: each container created needs its own. */
  freshSpec(): Promise<ContainerSpec>;
  /** Writes state to the agent row (and the digest, when given). */
  record(patch: Partial<LifecycleState>, reason?: string | null, imageDigest?: string): Promise<void>;
  stop(reason: string): Promise<void>;
}

export async function applyImage(ctx: ApplyImageContext, req: ApplyImageRequest): Promise<ApplyImageResult> {
  const { state, spec } = ctx;
  const queue = dockerTaskQueue(state.dockerHostId);
  // Generous bounds: a snapshot of a large volume or a slow health check is
  // normal here; heartbeats catch a dead worker within 30 s.
  const images = proxyActivities<ImageActivities>({
    taskQueue: queue,
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: '15 seconds',
    retry: { initialInterval: '1 second', maximumInterval: '20 seconds', maximumAttempts: 8 },
  });
  const docker = proxyActivities<DockerActivities>({
    taskQueue: queue,
    startToCloseTimeout: `${req.healthTimeoutSec + 120} seconds`,
    heartbeatTimeout: '15 seconds',
    retry: { initialInterval: '1 second', maximumInterval: '15 seconds', maximumAttempts: 8 },
  });

  const current = await images.containerImage(spec.containerName);
  if (current === req.toDigest) {
    await ctx.record({ imageDigest: req.toDigest }, undefined, req.toDigest);
    return { outcome: 'updated', fromDigest: current, toDigest: req.toDigest };
  }
  if (!current) {
    // Never created (or removed): nothing to snapshot or check; its next start runs the new digest.
    // Read the old digest first: record() writes the new one into state.
    const fromDigest = state.imageDigest ?? null;
    await ctx.record({ imageDigest: req.toDigest }, state.status === 'running' ? undefined : 'image_updated', req.toDigest);
    return { outcome: 'updated', fromDigest, toDigest: req.toDigest };
  }

  const wasRunning = state.status === 'running';
  const short = req.toDigest.replace(/^sha256:/, '').slice(0, 12);
  const noSpace = (err: unknown): ApplyImageResult => ({
    outcome: 'skipped',
    fromDigest: current,
    toDigest: req.toDigest,
    error: `${SNAPSHOT_NO_SPACE}: ${rootMessage(err)}`,
  });

  // No room for a snapshot means no update: checked before the agent is stopped,
  // so it keeps running on its old image and the disk Postgres may share stays
  // free. (Patched: updates begun before this check existed replay without it.)
  if (patched('snapshot-space-check')) {
    try {
      await images.checkSnapshotSpace({ volumeName: spec.volumeName });
    } catch (err) {
      if (rootFailureType(err) !== SNAPSHOT_NO_SPACE) throw err;
      log.warn('no room to snapshot; update skipped', { agentId: state.agentId, error: rootMessage(err) });
      return noSpace(err);
    }
  }

  state.phase = 'snapshotting';
  await ctx.record({ status: 'updating' }, `updating to ${short}`);
  await docker.stopContainer({ containerName: spec.containerName });
  let snapshot: Awaited<ReturnType<ImageActivities['snapshotVolume']>>;
  try {
    snapshot = await images.snapshotVolume({ containerName: spec.containerName, agentId: state.agentId, key: `${req.rolloutId}-${req.attempt}`, volumeName: spec.volumeName });
  } catch (err) {
    if (rootFailureType(err) !== SNAPSHOT_NO_SPACE) throw err;
    // The disk filled while writing: nothing was changed yet, so the agent goes back as it was, on its old image.
    log.warn('snapshot ran out of space; update skipped', { agentId: state.agentId, error: rootMessage(err) });
    if (wasRunning) {
      state.phase = 'starting';
      await bringUp(current);
      state.generation++;
      state.phase = 'ready';
      await ctx.record({ status: 'running', imageDigest: current, lastError: null }, null, current);
    } else {
      state.phase = 'idle';
      await ctx.record({ status: 'stopped', hostPort: null }, SNAPSHOT_NO_SPACE);
    }
    return noSpace(err);
  }

  async function bringUp(image: string): Promise<void> {
    // Each container gets its own bootstrap token (patched: older updates reused the spec).
    const fresh = patched('fresh-spec-per-container') ? await ctx.freshSpec() : spec;
    await docker.removeContainer({ containerName: spec.containerName });
    const { containerId } = await docker.ensureContainer({ ...fresh, image });
    const { hostPort } = await docker.startContainer(spec.containerName);
    Object.assign(state, { containerId, hostPort });
    await docker.waitHealthy({ containerName: spec.containerName, hostPort, timeoutSec: req.healthTimeoutSec, pollMs: req.healthPollMs });
  }

  /** Back to how the user left it: a stopped agent is checked healthy, then stopped again. */
  async function settle(image: string, reason: string): Promise<void> {
    state.generation++;
    state.phase = 'ready';
    await ctx.record({ status: 'running', imageDigest: image, lastError: null }, null, image);
    if (!wasRunning) await ctx.stop(reason);
  }

  try {
    state.phase = 'updating';
    await bringUp(req.toDigest);
    await settle(req.toDigest, 'image_updated');
    await images.deleteSnapshot({ path: snapshot.path }).catch(() => undefined);
    return { outcome: 'updated', fromDigest: current, toDigest: req.toDigest };
  } catch (err) {
    const error = rootMessage(err);
    log.warn('image update failed; rolling back', { agentId: state.agentId, error });
    try {
      state.phase = 'rolling_back';
      await docker.stopContainer({ containerName: spec.containerName });
      await images.restoreVolume({ spec, image: current, snapshot });
      await bringUp(current);
      await settle(current, 'rolled_back');
      await images.deleteSnapshot({ path: snapshot.path }).catch(() => undefined);
      return { outcome: 'rolled_back', fromDigest: current, toDigest: req.toDigest, error };
    } catch (rollbackErr) {
      const why = `${error}; rollback failed: ${rootMessage(rollbackErr)}`;
      state.phase = 'failed';
      await docker.stopContainer({ containerName: spec.containerName }).catch(() => undefined);
      // The snapshot stays: it is the only good copy of this agent's data now.
      await ctx.record({ status: 'error', lastError: why, hostPort: null }, 'rollback_failed');
      return { outcome: 'failed', fromDigest: current, toDigest: req.toDigest, error: why, snapshotPath: snapshot.path };
    }
  }
}
