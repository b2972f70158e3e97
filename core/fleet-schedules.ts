import { ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import { CONTROL_TASK_QUEUE } from './contracts/agent.contract.ts';
import { imagePollerScheduleId, type FleetSettings } from './contracts/rollout.contract.ts';

// One Temporal Schedule per image channel, kept in step with the fleet
// settings: at every worker start and whenever an admin saves the settings.

const PREFIX = imagePollerScheduleId('');

export async function syncImagePollers(client: Client, settings: Pick<FleetSettings, 'channels'>, opts: { healthPollMs: number }): Promise<void> {
  const wanted = new Map(settings.channels.map((c) => [imagePollerScheduleId(c.image), c]));
  for await (const s of client.schedule.list()) {
    if (s.scheduleId.startsWith(PREFIX) && !wanted.has(s.scheduleId)) {
      await client.schedule.getHandle(s.scheduleId).delete().catch((err) => {
        if (!(err instanceof ScheduleNotFoundError)) throw err;
      });
    }
  }
  for (const [scheduleId, c] of wanted) {
    const spec = { intervals: [{ every: `${c.pollIntervalSeconds} seconds` }] };
    const action = {
      type: 'startWorkflow' as const,
      workflowType: 'imagePoller',
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: scheduleId,
      args: [{ image: c.image, healthPollMs: opts.healthPollMs }],
      staticSummary: `Watch ${c.image} for a new digest`,
    };
    try {
      await client.schedule.create({ scheduleId, spec, action, policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' } });
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      await client.schedule.getHandle(scheduleId).update((prev) => ({ ...prev, spec, action }));
    }
  }
}
