import { getExternalWorkflowHandle, log, patched, proxyActivities } from '@temporalio/workflow';
import type { createAgentActivities } from '../activities/agent.activities.ts';
import type { createFleetActivities } from '../activities/fleet.activities.ts';
import { agentWorkflowId, reapIfIdleSignal } from '../core/contracts/agent.contract.ts';

const control = proxyActivities<ReturnType<typeof createAgentActivities>>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 5 },
});

const fleet = proxyActivities<ReturnType<typeof createFleetActivities>>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '1 minute',
  retry: { maximumAttempts: 5 },
});

/**
 * Run by the `idle-reaper` schedule. It only asks: each lifecycle re-checks
 * activity inside its own lock, so a chat that lands meanwhile wins.
 */
export async function idleReaper(): Promise<{ asked: number }> {
  // One activity asks them all (a few history events however many agents);
  // patched: a tick begun before, which signalled from here, replays as it ran.
  if (patched('reap-in-one-activity')) return fleet.askIdleAgentsToStop();
  const ids = await control.findIdleAgents();
  let asked = 0;
  for (const id of ids) {
    try {
      await getExternalWorkflowHandle(agentWorkflowId(id)).signal(reapIfIdleSignal);
      asked++;
    } catch (err) {
      // No lifecycle means nothing is running under Hangar's control; the reconciler fixes the row.
      log.info('no lifecycle to reap', { agentId: id, message: (err as Error).message });
    }
  }
  return { asked };
}
