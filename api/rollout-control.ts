import { createHash, randomUUID } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError, WorkflowFailedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { temporalWorkflowUrl } from '../core/config.ts';
import { CONTROL_TASK_QUEUE } from '../core/contracts/agent.contract.ts';
import { isImageAllowed, rolloutWorkflowId, type RolloutTrigger, type Strategy } from '../core/contracts/rollout.contract.ts';
import { ConflictError, ValidationError } from '../core/errors.ts';
import type { Core } from '../core/hangar.ts';
import { describeImage } from '../workflows/image-poller.workflow.ts';
import { abortRolloutSignal, rollout, fleetSettingsChangedSignal, pauseRolloutSignal, resumeRolloutSignal } from '../workflows/rollout.workflow.ts';

// The API's way to start and steer rollouts: everything goes through Temporal
// (the API has no Docker of its own; the image is described by a worker).

export function createRolloutControl({ client, core }: { client: Client; core: Core }) {
  const { config } = core;

  async function describe(image: string) {
    try {
      return await client.workflow.execute(describeImage, {
        taskQueue: CONTROL_TASK_QUEUE,
        workflowId: `describe-image/${randomUUID()}`,
        args: [{ image }],
        workflowExecutionTimeout: '1 minute',
      });
    } catch (err) {
      let cause = err as { message?: string; cause?: unknown; type?: string } | undefined;
      while (cause?.cause) cause = cause.cause as typeof cause;
      if (err instanceof WorkflowFailedError && cause?.type === 'image_missing') {
        throw new ValidationError(cause.message ?? `image ${image} is not present`, { image }, 'image_missing');
      }
      throw err;
    }
  }

  return {
    async start(req: {
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
    }): Promise<{ id: string; workflowId: string }> {
      const settings = await core.fleet.get();
      if (!isImageAllowed(req.image, settings.imageAllowlist)) {
        throw new ValidationError(`image ${req.image} is not on the image allowlist`, { allowlist: settings.imageAllowlist }, 'image_not_allowed');
      }
      const strategy: Strategy = { ...settings.strategy, ...req.strategy };
      const described = await describe(req.image);
      const toDigest = req.toDigest ?? described.digest;
      // The image's changelog describes the digest it is now; an older offered digest keeps the one its offer carried.
      const changelog = described.digest === toDigest ? described.changelog : (req.changelog ?? null);
      const scope = req.agentIds ? createHash('sha256').update([...req.agentIds].sort().join(',')).digest('hex').slice(0, 16) : undefined;
      const workflowId = rolloutWorkflowId(req.image, toDigest, scope);
      const id = randomUUID();
      try {
        await client.workflow.start(rollout, {
          taskQueue: CONTROL_TASK_QUEUE,
          workflowId,
          // An admin may run a digest again after an abort; never two at once.
          workflowIdReusePolicy: 'ALLOW_DUPLICATE',
          workflowIdConflictPolicy: 'FAIL',
          args: [{
            rolloutId: id,
            image: req.image,
            toDigest,
            strategy,
            trigger: req.trigger,
            agentIds: req.agentIds,
            ignoreWindows: req.ignoreWindows,
            startedById: req.startedById,
            changelog,
            healthPollMs: config.updateHealthPollMs,
          }],
          staticSummary: `Rollout of ${req.image} to ${toDigest.slice(7, 19)} (${req.trigger})`,
        });
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) {
          const running = await core.rollouts.latestFor(workflowId);
          throw new ConflictError('A rollout of this image digest is already running', 'rollout_in_progress', { id: running?.id ?? null, workflowId });
        }
        throw err;
      }
      // Written here as well as by the workflow, so the id answers GET at once.
      await core.rollouts.open({ id, workflowId, trigger: req.trigger, image: req.image, toDigest, strategy, changelog, startedById: req.startedById });
      return { id, workflowId };
    },

    async signal(rolloutId: string, action: 'pause' | 'resume' | 'abort', reason?: string) {
      const r = await core.rollouts.get(rolloutId);
      if (['completed', 'aborted', 'failed'].includes(r.status)) {
        throw new ConflictError(`The rollout has already ${r.status === 'completed' ? 'completed' : 'ended'}`, 'rollout_finished');
      }
      if (action === 'resume' && (await core.fleet.get()).mode === 'paused') {
        throw new ConflictError('The fleet mode is paused: set it to auto or manual to resume rollouts', 'fleet_paused');
      }
      const h = client.workflow.getHandle(r.workflowId);
      try {
        if (action === 'pause') await h.signal(pauseRolloutSignal);
        else if (action === 'resume') await h.signal(resumeRolloutSignal);
        else await h.signal(abortRolloutSignal, { reason: reason ?? 'aborted by an admin' });
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) throw new ConflictError('The rollout is no longer running', 'rollout_finished');
        throw err;
      }
      return r;
    },

    /** Running rollouts look at the fleet mode again now (e.g. paused → auto). */
    async settingsChanged(): Promise<void> {
      const running = await core.db.rollout.findMany({ where: { status: { in: ['pending', 'running', 'paused'] } }, select: { workflowId: true } });
      for (const r of running) {
        await client.workflow.getHandle(r.workflowId).signal(fleetSettingsChangedSignal).catch(() => undefined);
      }
    },

    workflowUrl(workflowId: string): string {
      return temporalWorkflowUrl(config, workflowId);
    },
  };
}

export type RolloutControl = ReturnType<typeof createRolloutControl>;
