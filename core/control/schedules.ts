import type { HangarConfig } from '../config.ts';
import { FLEET_RECONCILE_SCHEDULE_ID, FLEET_RECONCILE_WORKFLOW, IDLE_REAPER_SCHEDULE_ID, IDLE_REAPER_WORKFLOW } from '../contracts/agent.contract.ts';
import { MEMBER_DRIFT_SCHEDULE_ID, MEMBER_DRIFT_WORKFLOW } from '../contracts/workspace.contract.ts';
import { IMAGE_POLLER_WORKFLOW, imagePollerScheduleId, type FleetSettings } from '../contracts/rollout.contract.ts';
import type { TemporalPort } from './temporal.port.ts';

// Hangar's Temporal Schedules, registered idempotently: a second worker start
// (or a second worker) changes nothing, and a changed interval is applied.

/** The idle reaper (every minute), the fleet reconciler and the workspace agents' member drift check. */
export async function registerFleetSchedules(temporal: TemporalPort, config: Pick<HangarConfig, 'reconcileIntervalSec' | 'memberSyncIntervalSec'>): Promise<void> {
  await temporal.schedules.ensureInterval({
    id: IDLE_REAPER_SCHEDULE_ID,
    workflowType: IDLE_REAPER_WORKFLOW,
    everySeconds: 60,
    summary: 'Stop agents idle past their timeout',
  });
  await temporal.schedules.ensureInterval({
    id: FLEET_RECONCILE_SCHEDULE_ID,
    workflowType: FLEET_RECONCILE_WORKFLOW,
    everySeconds: config.reconcileIntervalSec,
    summary: 'Reconcile Docker with the database, both ways',
  });
  await temporal.schedules.ensureInterval({
    id: MEMBER_DRIFT_SCHEDULE_ID,
    workflowType: MEMBER_DRIFT_WORKFLOW,
    everySeconds: config.memberSyncIntervalSec,
    summary: "Compare every running workspace agent's member list with the database and repair drift",
  });
}

/** One image-poller schedule per channel, kept in step with the fleet settings (worker start, every save). */
export async function syncImagePollers(temporal: TemporalPort, settings: Pick<FleetSettings, 'channels'>, opts: { healthPollMs: number }): Promise<void> {
  const wanted = new Map(settings.channels.map((c) => [imagePollerScheduleId(c.image), c]));
  for (const id of await temporal.schedules.listIds(imagePollerScheduleId(''))) {
    if (!wanted.has(id)) await temporal.schedules.remove(id);
  }
  for (const [id, c] of wanted) {
    await temporal.schedules.ensureInterval({
      id,
      workflowType: IMAGE_POLLER_WORKFLOW,
      everySeconds: c.pollIntervalSeconds,
      args: [{ image: c.image, healthPollMs: opts.healthPollMs }],
      summary: `Watch ${c.image} for a new digest`,
    });
  }
}
