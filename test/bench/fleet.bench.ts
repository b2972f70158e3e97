import { randomUUID } from 'node:crypto';
import Docker from 'dockerode';
import pLimit from 'p-limit';
import {
  AGENT_LIFECYCLE_WORKFLOW,
  agentContainerName,
  agentVolumeName,
  agentWorkflowId,
  CONTROL_TASK_QUEUE,
  FLEET_RECONCILE_WORKFLOW,
  IDLE_REAPER_WORKFLOW,
  LABEL_AGENT_ID,
  LABEL_INSTANCE,
  LABEL_MANAGED,
  type AgentLifecycleWorkflow,
} from '../../core/contracts/agent.contract.ts';
import { asSystem } from '../../core/db.ts';
import { createTestUser, removeAgentsFromDocker, startHangarOn, type Hangar } from '../support/hangar.runtime.ts';
import { atMost, quantile, row, rssMb, type BenchContext, type BenchRow } from './bench.harness.ts';
import { startProductionProcesses, type ProductionProcesses } from '../support/production.runtime.ts';

// The fleet at scale: 10,000 agent rows, 1,000 lifecycle workflows alive, a
// few dozen real agents and 200 containers on the engine. Measured:
// - one idle-reaper tick with 1,000 of the rows idle past their timeout (every
//   one's lifecycle asked), against a fixed budget of 1 s;
// - one fleet-reconcile run (storage measured, rows and containers compared
//   both ways, disagreements handed to their lifecycles, orphans removed),
//   against 2 s;
// - the resident memory of the API and the worker, as production runs them
//   (compiled JavaScript, a prebuilt workflow bundle), against 300 MB.
const ROWS = Number(process.env.BENCH_FLEET_ROWS ?? 10_000);
const LIFECYCLES = Number(process.env.BENCH_FLEET_LIFECYCLES ?? 1_000);
const REAL_AGENTS = Number(process.env.BENCH_FLEET_REAL_AGENTS ?? 24);
const CONTAINERS = Number(process.env.BENCH_FLEET_CONTAINERS ?? 200);
/** Rows the reconciler finds "running" without a container (each handed to its lifecycle). */
const DISAGREEING = 50;
const ORPHANS = 5;
const RECONCILE_RUNS = 3;

/** Waits until no batch operation runs in the namespace (bounded); ms since `since`, null if still running at the bound. */
async function batchesDone(h: Hangar, since: number): Promise<number | null> {
  const namespace = h.core.config.temporalNamespace;
  for (let i = 0; i < 900; i++) {
    const { operationInfo } = await h.temporal.workflowService.listBatchOperations({ namespace });
    // BATCH_OPERATION_STATE_RUNNING = 1
    if (!operationInfo?.some((o) => o.state === 1)) return performance.now() - since;
    await new Promise((r) => setTimeout(r, 200));
  }
  return null;
}

/** The rows, written in one statement: ids known, so lifecycles and containers can name them. */
async function insertRows(h: Hangar, owner: string, ids: string[]): Promise<void> {
  const sealed = h.core.keyring.encrypt('bench-gateway-token');
  for (let i = 0; i < ids.length; i += 5000) {
    const chunk = ids.slice(i, i + 5000);
    await asSystem(h.core.db, (tx) => tx.$executeRaw`
      INSERT INTO agents (id, "ownerKind", "ownerId", name, image, "dockerHostId", "containerName", "volumeName", "gatewayToken", "idleTimeoutMin", "updatedAt")
      SELECT v.id, 'workspace', ${owner}, v.id, ${h.core.config.agentImage}, ${h.core.config.dockerHostId},
             'hangar-agent-' || v.id, 'hangar-agent-' || v.id || '-data', ${sealed}, 30, now()
      FROM unnest(${chunk}::text[]) AS v(id)`, { timeoutMs: 60_000 });
  }
}

async function setStatus(h: Hangar, ids: string[], status: 'running' | 'stopped', lastActiveAt: Date | null): Promise<void> {
  await asSystem(h.core.db, (tx) => tx.$executeRaw`
    UPDATE agents SET status = ${status}::"AgentStatus", "lastActiveAt" = ${lastActiveAt}
    WHERE id = ANY(${ids}::text[])`, { timeoutMs: 60_000 });
}

export default async function fleetBench({ stack, docker, log }: BenchContext): Promise<BenchRow[]> {
  const owner = `bench-fleet-${process.pid}`;
  const network = `hangar-bench-fleet-${process.pid}`;
  let h: Hangar | null = null;
  let prod: ProductionProcesses | null = null;
  const realIds: string[] = [];
  const containerNames: string[] = [];
  const ids = Array.from({ length: ROWS }, () => randomUUID());
  try {
    // No schedules: the bench runs the reaper and the reconciler itself, once each.
    h = await startHangarOn(stack, { LOG_LEVEL: 'error', HANGAR_REGISTER_SCHEDULES: 'false', HANGAR_AGENT_NETWORK: network }, { worker: false });
    prod = await startProductionProcesses(h.env, process.env.BENCH_FLEET_NODE_ARGS?.split(/\s+/).filter(Boolean));
    const instanceId = await h.core.settings.instanceId();

    let t0 = performance.now();
    await insertRows(h, owner, ids);
    log(`${ROWS} rows in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    t0 = performance.now();
    const lifecycleIds = ids.slice(0, LIFECYCLES);
    await pLimit(16).map(lifecycleIds, (agentId) =>
      h!.temporal.workflow.start<AgentLifecycleWorkflow>(AGENT_LIFECYCLE_WORKFLOW, {
        taskQueue: CONTROL_TASK_QUEUE,
        workflowId: agentWorkflowId(agentId),
        args: [{ agentId, dockerHostId: h!.core.config.dockerHostId }],
      }));
    log(`${LIFECYCLES} lifecycles started in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    t0 = performance.now();
    for (let i = 0; i < REAL_AGENTS; i++) {
      const user = await createTestUser(h);
      const res = await fetch(`${prod.apiUrl}/api/me/agent/start`, { method: 'POST', headers: { authorization: `Bearer ${user.token}` } });
      if (res.status !== 200) throw new Error(`start: ${res.status} ${await res.text()}`);
      realIds.push((await res.json()).id);
    }
    log(`${REAL_AGENTS} real agents started in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    // The rest of the 200 containers: made, never started (what a stopped agent leaves), on rows that say stopped.
    t0 = performance.now();
    const image = h.core.config.agentImage;
    const labelled = (agentId: string) => ({ [LABEL_MANAGED]: 'true', [LABEL_INSTANCE]: instanceId, [LABEL_AGENT_ID]: agentId });
    const stoppedWithContainer = ids.slice(LIFECYCLES, LIFECYCLES + Math.max(0, CONTAINERS - REAL_AGENTS - ORPHANS));
    const orphanIds = Array.from({ length: ORPHANS }, () => randomUUID());
    await pLimit(4).map([...stoppedWithContainer, ...orphanIds], async (agentId) => {
      const name = agentContainerName(agentId);
      containerNames.push(name);
      await docker.createContainer({
        name,
        Image: image,
        Labels: labelled(agentId),
        HostConfig: { Mounts: [{ Type: 'volume', Source: agentVolumeName(agentId), Target: '/data', VolumeOptions: { NoCopy: false, Labels: labelled(agentId), DriverConfig: { Name: 'local', Options: {} } } }] },
      });
    });
    log(`${containerNames.length} more containers made in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    // Reconcile first, on a quiet worker (the reaper's 1,000 signals leave the
    // lifecycles tens of seconds of tasks to work through): some rows say
    // running but have no container. Three runs; the first also removes the orphans.
    await setStatus(h, lifecycleIds.slice(0, DISAGREEING), 'running', new Date());
    const reconcileRuns: number[] = [];
    type Report = { fixed: string[]; orphansRemoved: string[]; measured: number };
    let report: Report | null = null;
    for (let i = 0; i < RECONCILE_RUNS; i++) {
      t0 = performance.now();
      const r = await h.temporal.workflow.execute(FLEET_RECONCILE_WORKFLOW, { taskQueue: CONTROL_TASK_QUEUE, workflowId: `bench-fleet-reconcile-${randomUUID()}` }) as Report;
      reconcileRuns.push(performance.now() - t0);
      report ??= r;
      log(`fleet reconcile: ${reconcileRuns.at(-1)!.toFixed(0)} ms, fixed ${r.fixed.length}, orphans removed ${r.orphansRemoved.length}, volumes measured ${r.measured}`);
    }
    const reconcileMs = quantile(reconcileRuns, 0.5);
    await setStatus(h, lifecycleIds.slice(0, DISAGREEING), 'stopped', null);

    // Idle reaper: 1,000 rows running and idle for two hours.
    await setStatus(h, lifecycleIds, 'running', new Date(Date.now() - 2 * 3600_000));
    t0 = performance.now();
    const reaped = await h.temporal.workflow.execute(IDLE_REAPER_WORKFLOW, { taskQueue: CONTROL_TASK_QUEUE, workflowId: `bench-idle-reaper-${randomUUID()}` }) as { asked: number };
    const reaperMs = performance.now() - t0;
    log(`idle reaper: ${reaperMs.toFixed(0)} ms, asked ${reaped.asked}`);
    // The tick hands its signals to a batch operation the server carries out
    // after the tick: wait for it (bounded) and say how long the delivery took.
    const deliveredMs = await batchesDone(h, t0);
    log(`idle reaper: signals delivered by the server ${deliveredMs === null ? 'not within 180 s' : `after ${deliveredMs.toFixed(0)} ms`}`);
    await setStatus(h, lifecycleIds, 'stopped', null);
    const containersSeen = (await docker.listContainers({ all: true, filters: { label: [`${LABEL_INSTANCE}=${instanceId}`] } })).length;

    // Memory once all of that has run: what a production process holds with the fleet alive.
    const [apiMb, workerMb] = [await rssMb(prod.apiPid), await rssMb(prod.workerPid)];
    log(`RSS: API ${apiMb.toFixed(0)} MB, worker ${workerMb.toFixed(0)} MB`);
    const fleet = `${ROWS} rows, ${LIFECYCLES} lifecycles alive, ${REAL_AGENTS} running agents, ${containersSeen + report!.orphansRemoved.length} containers`;
    return [
      row(`idle-reaper tick (${reaped.asked} idle asked) / 1 s budget`, reaperMs, 1000, 'ms', atMost(1), fleet),
      ...(deliveredMs === null ? [] : [row(`idle reaper: all ${reaped.asked} signals delivered (server batch) / 1 s`, deliveredMs, 1000, 'ms', null, fleet)]),
      row(`fleet-reconcile median of ${RECONCILE_RUNS} (${report!.fixed.length} fixed, ${report!.orphansRemoved.length} orphans in the first, ${report!.measured} volumes) / 2 s budget`, reconcileMs, 2000, 'ms', atMost(1), `${fleet}; runs ${reconcileRuns.map((ms) => ms.toFixed(0)).join(', ')} ms`),
      row('API + worker RSS (compiled JS) / 300 MB budget', apiMb + workerMb, 300, 'MB', atMost(1), `${fleet}; API ${apiMb.toFixed(0)} MB + worker ${workerMb.toFixed(0)} MB`),
    ];
  } finally {
    await prod?.stop();
    if (h) {
      await removeAgentsFromDocker(docker, realIds);
      for (const name of containerNames) await docker.getContainer(name).remove({ force: true, v: true }).catch(() => undefined);
      for (const name of containerNames) await docker.getVolume(`${name}-data`).remove().catch(() => undefined);
      await pLimit(16).map(ids.slice(0, LIFECYCLES), (id) => h!.temporal.workflow.getHandle(agentWorkflowId(id)).terminate('bench done').catch(() => undefined));
      await asSystem(h.core.db, (tx) => tx.$executeRaw`DELETE FROM agents WHERE "ownerId" = ${owner}`, { timeoutMs: 60_000 });
      await h.stop();
      const { removeAgentNetwork } = await import('../support/hangar.runtime.ts');
      await removeAgentNetwork(new Docker(), network);
    }
  }
}
