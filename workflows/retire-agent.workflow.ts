import { proxyActivities } from '@temporalio/workflow';
import type { createDockerActivities } from '../activities/docker.activities.ts';
import type { createFederationActivities } from '../activities/federation.activities.ts';
import { agentContainerName, agentVolumeName, dockerTaskQueue } from '../core/contracts/agent.contract.ts';
import type { RetireAgentWorkflow } from '../core/contracts/federation.contract.ts';

const control = proxyActivities<ReturnType<typeof createFederationActivities>>({
  // The stop waits behind whatever the agent's lifecycle is doing (a start's health wait, an update).
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});

/**
 * Stops one agent and removes it for good (`retire-agent/<agentId>`): its
 * lifecycle stops it (so the stop queues behind a start or an update) and
 * then ends, the container and volume go on its Docker host, and the row last,
 * so nothing starts it again meanwhile. A spoke runs this for a peer's kill,
 * or for every agent of a peer an admin removed. Every step is idempotent.
 */
export const retireAgent: RetireAgentWorkflow = async (input) => {
  const docker = proxyActivities<ReturnType<typeof createDockerActivities>>({
    taskQueue: dockerTaskQueue(input.dockerHostId),
    startToCloseTimeout: '2 minutes',
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
  });
  await control.stopAgentForRetire({ agentId: input.agentId, reason: input.reason });
  await control.endAgentLifecycle({ agentId: input.agentId, reason: input.reason });
  await docker.removeContainer({ containerName: agentContainerName(input.agentId) });
  await docker.removeAgentVolume({ volumeName: agentVolumeName(input.agentId) });
  await control.deleteRetiredAgent({ agentId: input.agentId, reason: input.reason });
  return { agentId: input.agentId, removed: true };
};
