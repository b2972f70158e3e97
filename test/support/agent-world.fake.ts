import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError, type Client, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import {
  agentContainerName,
  agentWorkflowId,
  disagreements,
  reapIfIdleSignal,
  reconcileSignal,
  UNHEALTHY_RESTARTED_EVENT,
  type AgentHealthCheck,
  type ContainerObservation,
  type ContainerSpec,
} from '../../core/contracts/agent.contract.ts';
import type { ControlActivities, HostActivities } from './workflow-tier.harness.ts';
import { waitFor } from './workflow-tier.harness.ts';

// A fake fleet for the workflow tier: the database side (agent rows, idleness)
// and one Docker host (containers by name), as plain activity functions that
// log every call. Tests read the log to prove order, and can hold any call
// open to build interleavings on purpose.

export const OLD = `sha256:${'a'.repeat(64)}`;
export const NEW = `sha256:${'b'.repeat(64)}`;

/** One start and one stop, as the lifecycle runs them, in activity calls. */
export const START = ['record starting', 'spec', 'ensure', 'start', 'health', 'record running'];
export const STOP = ['record stopping', 'stop', 'record stopped'];

export interface Call {
  agentId: string;
  op: string;
  /** The test server's clock when the activity was scheduled: virtual time (a local activity's is the worker's real clock). */
  at: number;
}

interface FakeContainer {
  id: string;
  running: boolean;
  image: string;
  exitCode: number | null;
}

const agentOf = (containerName: string) => containerName.replace(/^hangar-agent-/, '');

function virtualNow(): number {
  try {
    return Context.current().info.currentAttemptScheduledTimestampMs;
  } catch {
    return Date.now();
  }
}

export class AgentWorld {
  calls: Call[] = [];
  containers = new Map<string, FakeContainer>();
  /** Agents whose users are chatting: `isAgentIdle` says no. */
  busy = new Set<string>();
  /** What `findIdleAgents` returns. */
  idleCandidates: string[] = [];
  /** Rows the reconciler sees, per host. */
  rows: { id: string; status: string; containerName: string }[] = [];
  /** Agent ids that have a row (for orphan detection). */
  existing = new Set<string>();
  hosts: string[] = [];
  fleetEvents: { type: string; payload: Record<string, unknown> }[] = [];
  /** Volume sizes measureAgentVolumes reports, by agent id; over `storageCapBytes` is over the cap. */
  volumeSizes = new Map<string, number>();
  storageCapBytes = 1024;
  /** Agents whose next health check fails (once per entry). */
  unhealthy = new Set<string>();
  /** Agents whose reconcile health checks fail (until removed): `checkAgentHealth` says not ok. */
  notAnswering = new Set<string>();
  /** Consecutive failed checks per agent, as agents.healthFailures keeps them; the restart threshold. */
  healthFailures = new Map<string, number>();
  healthThreshold = 3;
  /** Agents whose next stop fails (once per entry). */
  unstoppable = new Set<string>();
  /** Extra env for every spec: lets a test grow the history. */
  specEnv: Record<string, string> = {};
  /** The new image is unhealthy; restoring the volume fails. */
  scenario: { newImageHealthy: boolean; restoreFails: boolean; noSpace?: 'check' | 'snapshot' } = { newImageHealthy: true, restoreFails: false };
  /** The fleet activities tell lifecycles through it (set by the test once its tier runs). */
  client: Client | null = null;
  private holds = new Map<string, { opened: Promise<void>; open: () => void }>();

  private log(agentId: string, op: string): void {
    this.calls.push({ agentId, op, at: virtualNow() });
  }

  ops(agentId: string): string[] {
    return this.calls.filter((c) => c.agentId === agentId).map((c) => c.op);
  }

  /** The next `op` call of this agent waits (after being logged) until `open()`. */
  hold(op: string, agentId: string): { open: () => void } {
    let open!: () => void;
    const opened = new Promise<void>((r) => (open = r));
    this.holds.set(`${op}/${agentId}`, { opened, open });
    return { open };
  }

  private async gate(op: string, agentId: string): Promise<void> {
    const h = this.holds.get(`${op}/${agentId}`);
    if (!h) return;
    this.holds.delete(`${op}/${agentId}`);
    await h.opened;
  }

  private async step(agentId: string, op: string): Promise<void> {
    this.log(agentId, op);
    await this.gate(op, agentId);
  }

  /** Waits until this agent's log satisfies `pred` (bounded). */
  until(agentId: string, pred: (ops: string[]) => boolean, what: string, timeoutMs?: number): Promise<string[]> {
    return waitFor(() => (pred(this.ops(agentId)) ? this.ops(agentId) : null), what, timeoutMs);
  }

  /** Waits until `op` has been logged `n` times for this agent. */
  untilCount(agentId: string, op: string, n: number, timeoutMs?: number): Promise<string[]> {
    return this.until(agentId, (ops) => ops.filter((o) => o === op).length >= n, `${n}× "${op}" for ${agentId}`, timeoutMs);
  }

  spec(agentId: string): ContainerSpec {
    return {
      agentId,
      instanceId: 'test-instance',
      ownerKind: 'user',
      ownerId: `owner-${agentId}`,
      containerName: agentContainerName(agentId),
      volumeName: `hangar-agent-${agentId}-data`,
      image: OLD,
      network: 'test-net',
      env: { ...this.specEnv },
      secretEnv: {},
      memoryMb: 256,
      cpus: 1,
      pids: 64,
      healthTimeoutSec: 30,
      startId: '',
    };
  }

  readonly control: Partial<ControlActivities> = {
    // 'mint': a spec for one more container an update creates (its own bootstrap token).
    getContainerSpec: async (agentId, purpose) => {
      await this.step(agentId, purpose === 'update' ? 'mint' : 'spec');
      return this.spec(agentId);
    },
    // One local activity of the lifecycle: the row marked, then the spec minted (logged as the two steps it replaces).
    beginAgentStart: async (agentId, patch) => {
      await this.step(agentId, `record ${patch.status}`);
      await this.step(agentId, 'spec');
      return this.spec(agentId);
    },
    recordAgentState: async (agentId, patch) => {
      await this.step(agentId, `record ${patch.status}${patch.statusReason ? ` (${patch.statusReason})` : ''}`);
    },
    isAgentIdle: async (agentId) => {
      await this.step(agentId, 'idle?');
      return !this.busy.has(agentId);
    },
    findIdleAgents: async () => this.idleCandidates,
    listDockerHosts: async () => this.hosts,
    getInstanceId: async () => 'test-instance',
    listAgentsOnHost: async () => this.rows as Awaited<ReturnType<ControlActivities['listAgentsOnHost']>>,
    existingAgentIds: async (ids) => ids.filter((id) => this.existing.has(id)),
    recordFleetEvent: async (e) => void this.fleetEvents.push(e),
    recordFleetEvents: async (events) => void this.fleetEvents.push(...events),
    // The fleet activities: the same rule as the real ones (disagreements), rows from `rows`, lifecycles told through `client`.
    askIdleAgentsToStop: async () => {
      let asked = 0;
      for (const id of this.idleCandidates) if (await this.tell(id, (h) => h.signal(reapIfIdleSignal))) asked++;
      return { asked };
    },
    reconcileHostRows: async ({ containers }) => {
      const tell = disagreements(this.rows.filter((r) => r.status === 'running'), containers);
      const fixed: string[] = [];
      const missingLifecycle: string[] = [];
      for (const t of tell) {
        if (await this.tell(t.agentId, (h) => h.signal(reconcileSignal, t.request))) fixed.push(t.agentId);
        else {
          missingLifecycle.push(t.agentId);
          this.log(t.agentId, 'record stopped (lifecycle_missing)');
        }
      }
      const orphans = containers.filter((c) => c.agentId && !this.existing.has(c.agentId)).map((c) => ({ name: c.name, agentId: c.agentId as string }));
      return { fixed, missingLifecycle, orphans };
    },
    recordAgentStorage: async ({ sizes }) => {
      const over = Object.entries(sizes).filter(([, b]) => b > this.storageCapBytes).map(([volume, b]) => ({ id: volume.replace(/^hangar-agent-|-data$/g, ''), status: 'running' as const, storageBytes: b }));
      return { measured: Object.keys(sizes).length, capBytes: this.storageCapBytes, over };
    },
    // The rule agents.recordHealth keeps in SQL: a pass resets, a failure of a running row counts, the threshold restarts and resets.
    recordAgentHealth: async ({ hostId, checks }) => {
      const running = new Set(this.rows.filter((r) => r.status === 'running').map((r) => r.id));
      const restarted: string[] = [];
      let failing = 0;
      for (const c of checks) {
        if (c.ok) {
          this.healthFailures.delete(c.agentId);
          continue;
        }
        if (!running.has(c.agentId)) continue;
        failing++;
        const n = (this.healthFailures.get(c.agentId) ?? 0) + 1;
        this.healthFailures.set(c.agentId, n < this.healthThreshold ? n : 0);
        if (n < this.healthThreshold) continue;
        if (!(await this.tell(c.agentId, (h) => h.signal(reconcileSignal, { observed: 'unhealthy', failure: c.detail })))) continue;
        restarted.push(c.agentId);
        this.fleetEvents.push({ type: UNHEALTHY_RESTARTED_EVENT, payload: { hostId, agentId: c.agentId, failures: n, failure: c.detail } });
      }
      return { checked: checks.length, failing, restarted };
    },
    stopAgentOverQuota: async ({ agentId }) => {
      await this.step(agentId, 'stop over quota');
      return { stopped: true, status: 'stopped' };
    },
  };

  readonly host: Partial<HostActivities> = {
    ensureContainer: (spec) => this.ensure(spec),
    startContainer: (name) => this.start(name),
    waitHealthy: ({ containerName }) => this.health(containerName),
    // The three steps in one activity (logged as the steps it replaces).
    launchContainer: async ({ spec }) => {
      const { containerId, imageId } = await this.ensure(spec);
      const { hostPort } = await this.start(spec.containerName);
      await this.health(spec.containerName);
      return { containerId, imageId, hostPort };
    },
    stopContainer: async ({ containerName }) => {
      await this.step(agentOf(containerName), 'stop');
      if (this.unstoppable.delete(agentOf(containerName))) throw ApplicationFailure.nonRetryable('the engine timed out', 'docker_timeout');
      const c = this.containers.get(containerName);
      if (c) c.running = false;
    },
    removeContainer: async ({ containerName }) => {
      await this.step(agentOf(containerName), 'remove');
      this.containers.delete(containerName);
    },
    removeContainers: async ({ containerNames }) => {
      for (const name of containerNames) {
        await this.step(agentOf(name), 'remove');
        this.containers.delete(name);
      }
    },
    inspectContainer: async (name) => {
      await this.step(agentOf(name), 'inspect');
      const c = this.containers.get(name);
      return c ? { name, id: c.id, agentId: agentOf(name), running: c.running, exitCode: c.exitCode } : null;
    },
    listManagedContainers: async () =>
      [...this.containers.entries()].map(([name, c]): ContainerObservation => ({
        name,
        id: c.id,
        agentId: name.startsWith('hangar-agent-') ? agentOf(name) : null,
        running: c.running,
        exitCode: c.exitCode,
      })),
    checkAgentHealth: async () =>
      [...this.containers.entries()]
        .filter(([name, c]) => c.running && name.startsWith('hangar-agent-'))
        .map(([name]): AgentHealthCheck => {
          const agentId = agentOf(name);
          const ok = !this.notAnswering.has(agentId);
          return { agentId, ok, detail: ok ? 'ready' : 'no answer within 3000 ms', dockerHealth: null };
        }),
    containerImage: async (name) => this.containers.get(name)?.image ?? null,
    checkSnapshotSpace: async ({ volumeName }) => {
      await this.step(volumeName.replace(/^hangar-agent-|-data$/g, ''), 'space');
      if (this.scenario.noSpace === 'check') throw ApplicationFailure.nonRetryable('not enough free space in /snapshots', 'snapshot_no_space');
      return { volumeBytes: 10, freeBytes: 1e9 };
    },
    snapshotVolume: async ({ agentId }) => {
      await this.step(agentId, 'snapshot');
      if (this.scenario.noSpace === 'snapshot') throw ApplicationFailure.nonRetryable('the snapshot disk filled up', 'snapshot_no_space');
      return { path: `/snapshots/${agentId}.tar`, bytes: 10, sha256: 'x' };
    },
    measureAgentVolumes: async () => ({
      sizes: Object.fromEntries([...this.volumeSizes.entries()].map(([id, b]) => [`hangar-agent-${id}-data`, b])),
      measuredAt: new Date(virtualNow()).toISOString(),
    }),
    restoreVolume: async ({ spec }) => {
      await this.step(spec.agentId, 'restore');
      if (this.scenario.restoreFails) throw ApplicationFailure.nonRetryable('no space left on device', 'restore_failed');
      return { bytes: 10 };
    },
    deleteSnapshot: async ({ path }) => {
      await this.step(path.replace(/^\/snapshots\/|\.tar$/g, ''), 'delete snapshot');
    },
  };

  /** false: the agent has no lifecycle. */
  private async tell(agentId: string, fn: (h: WorkflowHandle) => Promise<void>): Promise<boolean> {
    if (!this.client) throw new Error('AgentWorld.client is not set');
    try {
      await fn(this.client.workflow.getHandle(agentWorkflowId(agentId)));
      return true;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw err;
    }
  }

  private async ensure(spec: ContainerSpec) {
    await this.step(spec.agentId, spec.image === NEW ? 'ensure new' : 'ensure');
    const c = this.containers.get(spec.containerName) ?? { id: `c-${spec.agentId.slice(0, 6)}-${spec.image.slice(7, 10)}`, running: false, image: spec.image, exitCode: null };
    this.containers.set(spec.containerName, c);
    return { containerId: c.id, created: true, imageId: c.image };
  }

  private async start(name: string) {
    await this.step(agentOf(name), 'start');
    const c = this.containers.get(name);
    if (!c) throw ApplicationFailure.nonRetryable(`no container ${name}`, 'container_missing');
    c.running = true;
    return { hostPort: 40000 };
  }

  private async health(containerName: string) {
    const agentId = agentOf(containerName);
    const image = this.containers.get(containerName)?.image;
    await this.step(agentId, image === NEW ? 'health new' : 'health');
    if (this.unhealthy.delete(agentId)) throw ApplicationFailure.nonRetryable('health answered 500', 'health_timeout');
    if (image === NEW && !this.scenario.newImageHealthy) throw ApplicationFailure.nonRetryable('health answered 500', 'health_timeout');
  }

  /** A container as if Docker ran it (for reconcile and ensureRunning checks). */
  putContainer(agentId: string, c: Partial<FakeContainer> = {}): void {
    this.containers.set(agentContainerName(agentId), { id: `c-${agentId.slice(0, 6)}`, running: true, image: OLD, exitCode: null, ...c });
  }
}
