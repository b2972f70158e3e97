import { Context } from '@temporalio/activity';
import { STORAGE_QUOTA_EXCEEDED } from '../core/contracts/agent.contract.ts';
import type { Core } from '../core/hangar.ts';

// Control-queue side of the per-agent storage cap: the measurements go on the
// agent rows, and an agent over the cap is stopped through its own lifecycle
// (so the stop queues behind, and never races, a start or an update).

export function createQuotaActivities({ core }: { core: Pick<Core, 'agents' | 'temporal'> }) {
  return {
    /** Stores one engine's volume sizes; answers which agents are over the cap and not stopped. */
    recordAgentStorage(req: { hostId: string; sizes: Record<string, number>; measuredAt: string }) {
      return core.agents.recordStorage(req.hostId, req.sizes, new Date(req.measuredAt));
    },

    /**
     * The lifecycle's `stop` update with reason storage_quota_exceeded. The
     * update id (one per measurement) makes a retried activity attach to the
     * same stop. An agent without a lifecycle has no container to stop.
     */
    async stopAgentOverQuota(req: { agentId: string; measuredAt: string }): Promise<{ stopped: boolean; status: string | null }> {
      const beat = setInterval(() => Context.current().heartbeat(), 5000);
      try {
        const state = await core.temporal.agents.stop(req.agentId, STORAGE_QUOTA_EXCEEDED, `${STORAGE_QUOTA_EXCEEDED}/${req.agentId}/${req.measuredAt}`);
        return { stopped: state?.status === 'stopped', status: state?.status ?? null };
      } finally {
        clearInterval(beat);
      }
    },
  };
}
