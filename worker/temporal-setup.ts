import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client, type Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import {
  CONTROL_TASK_QUEUE,
  FLEET_RECONCILE_SCHEDULE_ID,
  IDLE_REAPER_SCHEDULE_ID,
  SEARCH_ATTRIBUTES,
} from '../core/contracts/agent.contract.ts';

// Idempotent registration of what the workflows rely on, run at every worker
// start: a second start (or a second worker) changes nothing.

export async function registerSearchAttributes(connection: Connection, namespace: string): Promise<void> {
  const Keyword = proto.temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
  const existing = await connection.operatorService.listSearchAttributes({ namespace });
  const missing = Object.values(SEARCH_ATTRIBUTES).filter((n) => !(n in (existing.customAttributes ?? {})));
  if (missing.length === 0) return;
  await connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(missing.map((n) => [n, Keyword])),
  });
}

export async function registerSchedules(client: Client, opts: { reconcileIntervalSec: number }): Promise<void> {
  const schedules = [
    { id: IDLE_REAPER_SCHEDULE_ID, workflowType: 'idleReaper', every: '1 minute', summary: 'Stop agents idle past their timeout' },
    {
      id: FLEET_RECONCILE_SCHEDULE_ID,
      workflowType: 'fleetReconcile',
      every: `${opts.reconcileIntervalSec} seconds`,
      summary: 'Reconcile Docker with the database, both ways',
    },
  ];
  for (const s of schedules) {
    const options = {
      scheduleId: s.id,
      spec: { intervals: [{ every: s.every }] },
      action: {
        type: 'startWorkflow' as const,
        workflowType: s.workflowType,
        taskQueue: CONTROL_TASK_QUEUE,
        workflowId: s.id,
        staticSummary: s.summary,
      },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' },
    };
    try {
      await client.schedule.create(options);
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      // Keep the interval in step with config on restart.
      await client.schedule.getHandle(s.id).update((prev) => ({ ...prev, spec: options.spec }));
    }
  }
}
