import { getExternalWorkflowHandle, log, proxyActivities } from '@temporalio/workflow';
import type { createAgentActivities } from '../activities/agent.activities.ts';
import { agentWorkflowId, reapIfIdleSignal } from '../core/contracts/agent.contract.ts';

const control = proxyActivities<ReturnType<typeof createAgentActivities>>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 5 },
});

/**
 * Run by the `idle-reaper` schedule. It only asks: each lifecycle re-checks
 * activity inside its own lock, so a chat that lands meanwhile wins.
 */
export async function idleReaper(): Promise<{ asked: number }> {
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
