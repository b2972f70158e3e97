import { proxyActivities } from '@temporalio/workflow';
import type { createEgressActivities } from '../activities/egress.activities.ts';
import { dockerTaskQueue } from '../core/contracts/agent.contract.ts';
import type { EgressPolicyWorkflow } from '../core/contracts/egress.contract.ts';

/**
 * Applies the saved egress allowlist on one Docker host (`egress-policy/<hostId>`).
 * The activity reads the allowlist itself, so whichever run gets there last
 * applies the newest list. A host whose worker is down waits here; its worker
 * applies the policy at start anyway.
 */
export const egressPolicy: EgressPolicyWorkflow = async (input) => {
  const host = proxyActivities<ReturnType<typeof createEgressActivities>>({
    taskQueue: dockerTaskQueue(input.hostId),
    startToCloseTimeout: '1 minute',
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
  });
  return host.applyEgressPolicy();
};
