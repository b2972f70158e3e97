import { createHash, randomUUID } from 'node:crypto';
import type { HangarConfig } from '../config.ts';
import { isImageAllowed, rolloutWorkflowId, type RolloutTrigger, type Strategy } from '../contracts/rollout.contract.ts';
import { ConflictError, ValidationError } from '../errors.ts';
import type { FleetSettingsService } from '../services/fleet-settings.service.ts';
import type { RolloutService } from '../services/rollouts.service.ts';
import { TemporalUnavailableError } from './failures.ts';
import type { TemporalPort } from './temporal.port.ts';

// Starting and steering rollouts. Everything goes through Temporal: the API
// has no Docker of its own, so even "what is this image now" is asked of a
// Docker-host worker.

export interface StartRolloutRequest {
  image: string;
  strategy?: Partial<Strategy>;
  agentIds?: string[];
  ignoreWindows?: boolean;
  trigger: RolloutTrigger;
  startedById: string;
  /** The digest offered to the user ("Update now"); otherwise what the image is now. */
  toDigest?: string;
  /** The offer's changelog, when the image has moved on since. */
  changelog?: string | null;
}

export function createRolloutControl(deps: {
  temporal: TemporalPort;
  config: Pick<HangarConfig, 'updateHealthPollMs'>;
  fleet: FleetSettingsService;
  rollouts: RolloutService;
}) {
  const { temporal, fleet, rollouts } = deps;

  return {
    async start(req: StartRolloutRequest): Promise<{ id: string; workflowId: string }> {
      const settings = await fleet.get();
      if (!isImageAllowed(req.image, settings.imageAllowlist)) {
        throw new ValidationError(`image ${req.image} is not on the image allowlist`, { allowlist: settings.imageAllowlist }, 'image_not_allowed');
      }
      const strategy: Strategy = { ...settings.strategy, ...req.strategy };
      const described = await temporal.rollouts.describeImage(req.image);
      const toDigest = req.toDigest ?? described.digest;
      // The image's changelog describes the digest it is now; an older offered digest keeps the one its offer carried.
      const changelog = described.digest === toDigest ? described.changelog : (req.changelog ?? null);
      const scope = req.agentIds ? createHash('sha256').update([...req.agentIds].sort().join(',')).digest('hex').slice(0, 16) : undefined;
      const workflowId = rolloutWorkflowId(req.image, toDigest, scope);
      const id = randomUUID();
      const started = await temporal.rollouts.start(workflowId, {
        rolloutId: id,
        image: req.image,
        toDigest,
        strategy,
        trigger: req.trigger,
        agentIds: req.agentIds,
        ignoreWindows: req.ignoreWindows,
        startedById: req.startedById,
        changelog,
        healthPollMs: deps.config.updateHealthPollMs,
      }, `Rollout of ${req.image} to ${toDigest.slice(7, 19)} (${req.trigger})`);
      if (!started) {
        const running = await rollouts.latestFor(workflowId);
        throw new ConflictError('A rollout of this image digest is already running', 'rollout_in_progress', { id: running?.id ?? null, workflowId });
      }
      // Written here as well as by the workflow, so the id answers GET at once.
      await rollouts.open({ id, workflowId, trigger: req.trigger, image: req.image, toDigest, strategy, changelog, startedById: req.startedById });
      return { id, workflowId };
    },

    async signal(rolloutId: string, action: 'pause' | 'resume' | 'abort', reason?: string) {
      const r = await rollouts.get(rolloutId);
      if (['completed', 'aborted', 'failed'].includes(r.status)) {
        throw new ConflictError(`The rollout has already ${r.status === 'completed' ? 'completed' : 'ended'}`, 'rollout_finished');
      }
      if (action === 'resume' && (await fleet.get()).mode === 'paused') {
        throw new ConflictError('The fleet mode is paused: set it to auto or manual to resume rollouts', 'fleet_paused');
      }
      if (!(await temporal.rollouts.signal(r.workflowId, action, reason))) {
        throw new ConflictError('The rollout is no longer running', 'rollout_finished');
      }
      return r;
    },

    /** Running rollouts look at the fleet mode again now (e.g. paused → auto). */
    async settingsChanged(): Promise<void> {
      try {
        // A rollout that ended meanwhile needs no telling (signal answers false).
        for (const workflowId of await rollouts.openWorkflowIds()) await temporal.rollouts.signal(workflowId, 'settingsChanged');
      } catch (err) {
        // Rollouts re-read the settings every minute anyway: an unreachable Temporal only delays this.
        if (!(err instanceof TemporalUnavailableError)) throw err;
      }
    },

    workflowUrl(workflowId: string): string {
      return temporal.workflowUrl(workflowId);
    },
  };
}

export type RolloutControl = ReturnType<typeof createRolloutControl>;
