import { getExternalWorkflowHandle, log, proxyActivities } from '@temporalio/workflow';
import type { createAgentActivities } from '../activities/agent.activities.ts';
import type { createDockerActivities } from '../activities/docker.activities.ts';
import { agentWorkflowId, reconcileSignal, dockerTaskQueue } from '../core/contracts/agent.contract.ts';

const control = proxyActivities<ReturnType<typeof createAgentActivities>>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 5 },
});

export interface ReconcileReport {
  hosts: number;
  fixed: string[];
  orphansRemoved: string[];
  missingLifecycle: string[];
}

/**
 * Run by the `fleet-reconcile` schedule, both ways: rows whose container is
 * gone or crashed are handed to their lifecycle; Hangar-labelled containers
 * with no agent row are removed.
 */
export async function fleetReconcile(): Promise<ReconcileReport> {
  const report: ReconcileReport = { hosts: 0, fixed: [], orphansRemoved: [], missingLifecycle: [] };
  const instanceId = await control.getInstanceId();
  for (const hostId of await control.listDockerHosts()) {
    report.hosts++;
    const docker = proxyActivities<ReturnType<typeof createDockerActivities>>({
      taskQueue: dockerTaskQueue(hostId),
      startToCloseTimeout: '1 minute',
      retry: { maximumAttempts: 3 },
    });
    const containers = await docker.listManagedContainers(instanceId);
    const rows = await control.listAgentsOnHost(hostId);
    const byName = new Map(containers.map((c) => [c.name, c]));

    for (const row of rows) {
      if (row.status !== 'running') continue;
      const seen = byName.get(row.containerName);
      if (seen?.running) continue;
      try {
        await getExternalWorkflowHandle(agentWorkflowId(row.id)).signal(reconcileSignal, {
          observed: seen ? 'exited' : 'missing',
        });
        report.fixed.push(row.id);
      } catch {
        report.missingLifecycle.push(row.id);
        await control.recordAgentState(row.id, {
          status: 'stopped',
          containerId: null,
          gatewayPort: null,
          statusReason: 'lifecycle_missing',
        });
      }
    }

    const labelled = containers.filter((c) => c.agentId);
    const known = new Set(await control.existingAgentIds(labelled.map((c) => c.agentId as string)));
    for (const c of labelled) {
      if (known.has(c.agentId as string)) continue;
      await docker.removeContainer({ containerName: c.name });
      report.orphansRemoved.push(c.name);
      await control.recordFleetEvent({ type: 'orphan_removed', payload: { container: c.name, agentId: c.agentId, hostId } });
    }
  }
  if (report.fixed.length || report.orphansRemoved.length) log.info('fleet reconciled', { ...report });
  return report;
}
