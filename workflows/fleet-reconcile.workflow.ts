import { getExternalWorkflowHandle, log, patched, proxyActivities } from '@temporalio/workflow';
import type { createAgentActivities } from '../activities/agent.activities.ts';
import type { createDockerActivities } from '../activities/docker.activities.ts';
import type { createFleetActivities } from '../activities/fleet.activities.ts';
import type { createHealthActivities } from '../activities/health.activities.ts';
import type { createQuotaActivities } from '../activities/quota.activities.ts';
import type { createStorageActivities } from '../activities/storage.activities.ts';
import { agentWorkflowId, reconcileSignal, dockerTaskQueue, type ContainerObservation } from '../core/contracts/agent.contract.ts';

const control = proxyActivities<ReturnType<typeof createAgentActivities>>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 5 },
});

const quota = proxyActivities<ReturnType<typeof createQuotaActivities>>({
  // A stop waits behind whatever the agent's lifecycle is doing (a start's health wait, an update).
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { maximumAttempts: 5 },
});

const fleet = proxyActivities<ReturnType<typeof createFleetActivities>>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '1 minute',
  retry: { maximumAttempts: 5 },
});

export interface ReconcileReport {
  hosts: number;
  fixed: string[];
  orphansRemoved: string[];
  missingLifecycle: string[];
  /** Agent volumes measured (storage cap). */
  measured: number;
  /** Agents found over the storage cap and stopped. */
  overQuota: string[];
  /** Running agents asked whether they answer (health checks). */
  checked?: number;
  /** Agents that failed their check this run. */
  unhealthy?: string[];
  /** Agents past HANGAR_HEALTH_FAILURES_BEFORE_RESTART failed checks, handed to their lifecycle to restart. */
  unhealthyRestarted?: string[];
}

/**
 * Run by the `fleet-reconcile` schedule, both ways: rows whose container is
 * gone or crashed are handed to their lifecycle; Hangar-labelled containers
 * with no agent row are removed. First, every agent volume is measured and
 * an agent over the storage cap is stopped.
 */
export async function fleetReconcile(): Promise<ReconcileReport> {
  const report: ReconcileReport = { hosts: 0, fixed: [], orphansRemoved: [], missingLifecycle: [], measured: 0, overQuota: [] };
  // Steps that do not wait on each other run at once: a run takes as many
  // round trips as its longest chain, not their sum. Patched: a run begun
  // before replays its steps one after another.
  const together = patched('reconcile-concurrent-steps');
  let instanceId: string;
  let hosts: string[];
  if (together) [instanceId, hosts] = await Promise.all([control.getInstanceId(), control.listDockerHosts()]);
  else {
    instanceId = await control.getInstanceId();
    hosts = await control.listDockerHosts();
  }
  for (const hostId of hosts) {
    report.hosts++;
    const docker = proxyActivities<ReturnType<typeof createDockerActivities> & ReturnType<typeof createStorageActivities>>({
      taskQueue: dockerTaskQueue(hostId),
      startToCloseTimeout: '1 minute',
      retry: { maximumAttempts: 3 },
    });

    // Its own timeout: with every agent hanging, a large host's checks take
    // (agents / probes in flight) x the per-check timeout; heartbeats show progress.
    const probes = proxyActivities<ReturnType<typeof createHealthActivities>>({
      taskQueue: dockerTaskQueue(hostId),
      startToCloseTimeout: '10 minutes',
      heartbeatTimeout: '1 minute',
      retry: { maximumAttempts: 2 },
    });

    // Patched: a reconcile begun before the storage cap existed replays without it.
    const capped = patched('storage-cap');
    let containers;
    if (capped && together) {
      // The storage cap (measure, record, stop the over-cap), the health
      // checks and the comparison of rows with containers are independent:
      // side by side. Patched: a run begun before the health checks replays without them.
      const cap = enforceStorageCap(hostId, instanceId, docker, report);
      const checks = patched('health-checks') ? checkHealth(hostId, instanceId, probes, report) : undefined;
      containers = await docker.listManagedContainers(instanceId);
      await compareRows(hostId, containers, docker, report);
      await cap;
      await checks;
      continue;
    }
    if (capped) await enforceStorageCap(hostId, instanceId, docker, report);

    containers = await docker.listManagedContainers(instanceId);
    // The rows compared in one activity (only running ones leave the database; lifecycles told
    // concurrently), orphans removed in one: a few history events however large the fleet.
    // Patched: a reconcile begun before replays its per-row steps.
    if (patched('reconcile-in-activities')) {
      await compareRows(hostId, containers, docker, report);
      continue;
    }
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
  if (report.fixed.length || report.orphansRemoved.length || report.overQuota.length || report.unhealthyRestarted?.length) log.info('fleet reconciled', { ...report });
  return report;
}

/** One host's rows against its containers (one activity), then its orphans removed and logged (one each). */
async function compareRows(
  hostId: string,
  containers: ContainerObservation[],
  docker: { removeContainers: ReturnType<typeof createDockerActivities>['removeContainers'] },
  report: ReconcileReport,
): Promise<void> {
  const found = await fleet.reconcileHostRows({ hostId, containers });
  report.fixed.push(...found.fixed);
  report.missingLifecycle.push(...found.missingLifecycle);
  if (found.orphans.length > 0) {
    await docker.removeContainers({ containerNames: found.orphans.map((o) => o.name) });
    report.orphansRemoved.push(...found.orphans.map((o) => o.name));
    await control.recordFleetEvents(found.orphans.map((o) => ({ type: 'orphan_removed', payload: { container: o.name, agentId: o.agentId, hostId } })));
  }
}

/** Measures every agent volume on one host and stops the agents over the storage cap. */
async function enforceStorageCap(
  hostId: string,
  instanceId: string,
  docker: { measureAgentVolumes: ReturnType<typeof createStorageActivities>['measureAgentVolumes'] },
  report: ReconcileReport,
): Promise<void> {
  try {
    const usage = await docker.measureAgentVolumes(instanceId);
    const storage = await quota.recordAgentStorage({ hostId, ...usage });
    report.measured += storage.measured;
    for (const over of storage.over) {
      const result = await quota.stopAgentOverQuota({ agentId: over.id, measuredAt: usage.measuredAt });
      report.overQuota.push(over.id);
      await control.recordFleetEvent({
        type: 'agent.storage_quota_exceeded',
        agentId: over.id,
        payload: { hostId, storageBytes: over.storageBytes, capBytes: storage.capBytes, measuredAt: usage.measuredAt, stopped: result.stopped },
      });
    }
  } catch (err) {
    // A failed measurement must not hold up the rest of the reconcile; the next run measures again.
    log.warn('storage check failed', { hostId, message: (err as Error).message });
  }
}

/**
 * Asks every running agent on one host whether it answers (the host's worker,
 * concurrently, each within HANGAR_HEALTH_CHECK_TIMEOUT_MS); the counts and
 * the restarts are the database's and the lifecycles' business (one activity).
 */
async function checkHealth(
  hostId: string,
  instanceId: string,
  docker: { checkAgentHealth: ReturnType<typeof createHealthActivities>['checkAgentHealth'] },
  report: ReconcileReport,
): Promise<void> {
  try {
    const checks = await docker.checkAgentHealth(instanceId);
    const counted = await fleet.recordAgentHealth({ hostId, checks });
    report.checked = (report.checked ?? 0) + counted.checked;
    report.unhealthy = [...(report.unhealthy ?? []), ...checks.filter((c) => !c.ok).map((c) => c.agentId)];
    report.unhealthyRestarted = [...(report.unhealthyRestarted ?? []), ...counted.restarted];
  } catch (err) {
    // Like the storage check: a failed round must not hold up the rest; the next run checks again.
    log.warn('health check failed', { hostId, message: (err as Error).message });
  }
}
