import { Context } from '@temporalio/activity';
import type {
  ApplyImageRequest,
  ApplyImageResult,
  FleetSettings,
  RolloutInput,
  RolloutProgress,
  RolloutTarget,
} from '../core/contracts/rollout.contract.ts';
import { TemporalUnavailableError } from '../core/control/failures.ts';
import { AppError, NotFoundError } from '../core/errors.ts';
import type { Core } from '../core/hangar.ts';

// Control-queue side of a rollout: its records, its mail, and the call into
// each agent's lifecycle. Thin wrappers over core services.

type RolloutCore = Pick<Core, 'agents' | 'fleet' | 'rollouts' | 'notifications' | 'temporal'>;

const shortDigest = (d: string) => d.replace(/^sha256:/, '').slice(0, 12);

export function createRolloutActivities({ core }: { core: RolloutCore }) {
  const { rollouts, notifications } = core;

  return {
    fleetSettings(): Promise<FleetSettings> {
      return core.fleet.get();
    },

    async openRollout(input: RolloutInput & { workflowId: string; changelog: string | null }): Promise<void> {
      await rollouts.open({
        id: input.rolloutId,
        workflowId: input.workflowId,
        trigger: input.trigger,
        image: input.image,
        toDigest: input.toDigest,
        strategy: input.strategy,
        changelog: input.changelog,
        startedById: input.startedById,
      });
    },

    rolloutTargets(input: Pick<RolloutInput, 'image' | 'toDigest' | 'agentIds'>) {
      return rollouts.targets(input);
    },

    async saveRolloutProgress(progress: RolloutProgress, fromDigest?: string | null): Promise<void> {
      await rollouts.saveProgress(progress, fromDigest);
    },

    async recordRolloutEvent(e: { type: string; rolloutId: string; agentId?: string; payload?: Record<string, unknown> }): Promise<void> {
      await rollouts.recordEvent(e);
    },

    async offerUpdate(req: { agentIds: string[]; toDigest: string; rolloutId: string }): Promise<void> {
      await rollouts.offerUpdate(req.agentIds, req.toDigest, req.rolloutId);
    },

    /**
     * Moves one agent through its own lifecycle. The update id makes a retry
     * (after this worker died) attach to the same update instead of running
     * a second one.
     */
    async applyImageToAgent(req: { target: RolloutTarget; request: ApplyImageRequest }): Promise<ApplyImageResult> {
      let agent;
      try {
        agent = await core.agents.get(req.target.agentId);
      } catch (err) {
        if (err instanceof NotFoundError) return { outcome: 'skipped', fromDigest: null, toDigest: req.request.toDigest, error: 'agent no longer exists' };
        throw err;
      }
      const beat = setInterval(() => Context.current().heartbeat(), 5000);
      try {
        return await core.temporal.agents.applyImage(agent, req.request, `${req.request.rolloutId}/${agent.id}/${req.request.attempt}`);
      } catch (err) {
        // The lifecycle refused the request (validator) or failed it: this agent's
        // update failed and the rollout goes on. Temporal being down is retried.
        if (err instanceof AppError && !(err instanceof TemporalUnavailableError)) {
          return { outcome: 'failed', fromDigest: null, toDigest: req.request.toDigest, error: err.message };
        }
        throw err;
      } finally {
        clearInterval(beat);
      }
    },

    /** The owner hears once per rollout: "updated" in auto mode, "update available" in manual mode. */
    async notifyOwners(req: {
      rolloutId: string;
      kind: 'updated' | 'update_available';
      image: string;
      toDigest: string;
      changelog: string | null;
      targets: Pick<RolloutTarget, 'agentId' | 'ownerKind' | 'ownerId'>[];
    }): Promise<{ sent: number; skipped: number }> {
      const subject = req.kind === 'updated'
        ? `Your agent was updated to ${req.image} (${shortDigest(req.toDigest)})`
        : `An update is available for your agent: ${req.image} (${shortDigest(req.toDigest)})`;
      const text = [
        req.kind === 'updated'
          ? 'Your agent now runs a new image. Its data was kept.'
          : 'A new image is available for your agent. It will not change until you choose "Update now" in Hangar.',
        '',
        `Image: ${req.image}`,
        `Digest: ${req.toDigest}`,
        '',
        'What changed:',
        req.changelog ?? '(no changelog in the image)',
      ].join('\n');
      const total = { sent: 0, skipped: 0 };
      const seen = new Set<string>();
      for (const t of req.targets) {
        const people = (await notifications.ownersOf(t.ownerKind, t.ownerId)).filter((p) => !seen.has(p.id));
        people.forEach((p) => seen.add(p.id));
        const r = await notifications.sendTo(req.rolloutId, req.kind, people, { subject, text });
        total.sent += r.sent;
        total.skipped += r.skipped;
      }
      return total;
    },

    /** Admins hear when agents were rolled back, could not be restored, or the rollout aborted: once per rollout. */
    async alertAdmins(req: {
      rolloutId: string;
      image: string;
      toDigest: string;
      status: string;
      reason?: string;
      failures: { agentId: string; outcome: string; error?: string; snapshotPath?: string }[];
    }) {
      const restoreFailed = req.failures.some((f) => f.outcome === 'failed' && f.snapshotPath);
      const lines = req.failures.map(
        (f) => `- agent ${f.agentId}: ${f.outcome}${f.error ? ` (${f.error})` : ''}${f.snapshotPath ? `\n  snapshot kept at ${f.snapshotPath}` : ''}`,
      );
      const mail = {
        subject: restoreFailed
          ? `Hangar: rollback FAILED for agents in the rollout of ${req.image}`
          : `Hangar: rollout of ${req.image} ${req.status}: ${req.failures.length} agent(s) rolled back or failed`,
        text: [
          `Rollout ${req.rolloutId} of ${req.image} (${req.toDigest}): ${req.status}${req.reason ? ` (${req.reason})` : ''}.`,
          restoreFailed ? 'Some agents could not be restored; their volume snapshots were kept. Restore them before deleting anything.' : 'Rolled-back agents run their previous image with their data restored.',
          '',
          ...lines,
        ].join('\n'),
      };
      return notifications.sendTo(req.rolloutId, 'admin_alert', await notifications.admins(), mail);
    },
  };
}
