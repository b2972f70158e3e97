import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type Docker from 'dockerode';
import {
  AGENT_PORT,
  LABEL_AGENT_ID,
  LABEL_MANAGED,
  LABEL_INSTANCE,
  LABEL_OWNER,
  LABEL_START,
  type ContainerObservation,
  type ContainerSpec,
} from '../core/contracts/agent.contract.ts';
import type { Keyring } from '../core/crypto.ts';
import { probeAgent } from './health.activities.ts';

// Docker side effects for one engine; they run on that engine's task queue.
// Each is idempotent (deterministic names, create-if-absent, start-if-stopped)
// because Temporal may run any of them again after a crash.

const isStatus = (err: unknown, code: number) => (err as { statusCode?: number })?.statusCode === code;

export interface DockerActivityDeps {
  docker: Docker;
  keyring: Keyring;
  /** Where published agent ports are reached from this worker. */
  agentHost?: string;
  /** Shared with the egress enforcer, so both see one network per name. */
  networks?: AgentNetworks;
  /** Makes sure the network's egress policy is in place before an agent joins it. */
  egress?: { ensureFor(network: string, networkId: string): Promise<void> };
}

export type AgentNetworks = ReturnType<typeof createAgentNetworks>;

/**
 * Docker's log stream for a container without a TTY: frames of an 8-byte
 * header (stream, 3 zero bytes, big-endian length) and the payload. Plain
 * text is returned as it is.
 */
export function demuxLogs(buf: Buffer): string {
  const parts: string[] = [];
  let i = 0;
  while (i + 8 <= buf.length && buf[i] <= 2 && buf[i + 1] === 0 && buf[i + 2] === 0 && buf[i + 3] === 0) {
    const size = buf.readUInt32BE(i + 4);
    parts.push(buf.subarray(i + 8, i + 8 + size).toString('utf8'));
    i += 8 + size;
  }
  if (i === 0) return buf.toString('utf8');
  return parts.join('') + buf.subarray(i).toString('utf8');
}

/**
 * The agents' bridge networks. Docker allows two networks with one name, so
 * concurrent creates would make duplicates: one creation per worker process,
 * and extras cleaned up.
 */
export function createAgentNetworks(docker: Docker) {
  const networks = new Map<string, Promise<string>>();

  async function findOrCreateNetwork(name: string): Promise<string> {
    const found = (await docker.listNetworks({ filters: { name: [name] } })).filter((n) => n.Name === name);
    if (found.length > 0) {
      const [keep, ...extra] = found.sort((a, b) => a.Id.localeCompare(b.Id));
      for (const n of extra) await docker.getNetwork(n.Id).remove().catch(() => undefined);
      return keep.Id;
    }
    // Inter-container traffic off: one tenant's agent can never reach another's.
    const created = await docker.createNetwork({
      Name: name,
      Driver: 'bridge',
      CheckDuplicate: true,
      Labels: { [LABEL_MANAGED]: 'true' },
      Options: { 'com.docker.network.bridge.enable_icc': 'false' },
    });
    return created.id;
  }

  return {
    /**
     * The network's id, created if absent. A network removed behind our back is
     * found missing and made again. `verify: false` trusts the id this process
     * saw last (no engine call): for callers that notice a vanished network
     * anyway (a container start on it fails) and then ask again with verify.
     */
    async ensure(name: string, opts: { verify?: boolean } = {}): Promise<string> {
      let p = networks.get(name);
      if (p && opts.verify === false) {
        const id = await p.catch(() => null);
        if (id) return id;
        if (networks.get(name) === p) networks.delete(name);
        p = undefined;
      }
      if (p) {
        const id = await p.catch(() => null);
        if (id && (await docker.getNetwork(id).inspect().then(() => true, (err) => !isStatus(err, 404)))) return id;
        if (networks.get(name) === p) networks.delete(name);
      }
      p = networks.get(name);
      if (!p) {
        p = findOrCreateNetwork(name).catch((err) => {
          networks.delete(name);
          throw err;
        });
        networks.set(name, p);
      }
      return p;
    },
  };
}

export function createDockerActivities({ docker, keyring, agentHost = '127.0.0.1', networks = createAgentNetworks(docker), egress }: DockerActivityDeps) {
  async function inspect(name: string): Promise<Docker.ContainerInspectInfo | null> {
    try {
      return await docker.getContainer(name).inspect();
    } catch (err) {
      if (isStatus(err, 404)) return null;
      throw err;
    }
  }

  async function ensureVolume(name: string, labels: Record<string, string>): Promise<void> {
    try {
      await docker.getVolume(name).inspect();
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
      await docker.createVolume({ Name: name, Labels: labels });
    }
  }

  async function logTail(name: string): Promise<string> {
    try {
      const buf = (await docker.getContainer(name).logs({ stdout: true, stderr: true, tail: 20 })) as unknown as Buffer;
      return demuxLogs(buf).trim().slice(-1200);
    } catch {
      return '';
    }
  }

  /** One readiness probe, each request bounded at 2 s (health.activities.ts). */
  const probe = (hostPort: number) => probeAgent(agentHost, hostPort, () => AbortSignal.timeout(2000));

  function labelsOf(spec: ContainerSpec): Record<string, string> {
    return {
      [LABEL_MANAGED]: 'true',
      [LABEL_INSTANCE]: spec.instanceId,
      [LABEL_AGENT_ID]: spec.agentId,
      [LABEL_OWNER]: `${spec.ownerKind}:${spec.ownerId}`,
    };
  }

  function containerOptions(spec: ContainerSpec, networkId: string): Docker.ContainerCreateOptions {
    const labels = labelsOf(spec);
    const env = { ...spec.env };
    for (const [k, v] of Object.entries(spec.secretEnv)) env[k] = keyring.decrypt(v);
    return {
      name: spec.containerName,
      Image: spec.image,
      User: '10001:10001',
      Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      Labels: { ...labels, [LABEL_START]: spec.startId },
      ExposedPorts: { [`${AGENT_PORT}/tcp`]: {} },
      HostConfig: {
        // Loopback only: agents are reached through Hangar's proxy, never directly.
        PortBindings: { [`${AGENT_PORT}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: '' }] },
        // The engine makes a missing volume at create, with these labels (the storage cap finds it by them).
        Mounts: [{ Type: 'volume', Source: spec.volumeName, Target: '/data', VolumeOptions: { NoCopy: false, Labels: labels, DriverConfig: { Name: 'local', Options: {} } } }],
        NetworkMode: networkId,
        ExtraHosts: ['host.docker.internal:host-gateway'],
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        ReadonlyRootfs: true,
        Tmpfs: { '/tmp': `rw,noexec,nosuid,size=${spec.tmpfsMb ?? 16}m` },
        Memory: spec.memoryMb * 1024 * 1024,
        NanoCpus: Math.round(spec.cpus * 1e9),
        PidsLimit: spec.pids,
        RestartPolicy: { Name: 'no' },
      },
    };
  }

  const sameStart = (info: Docker.ContainerInspectInfo | null, spec: ContainerSpec) => (info?.Config.Labels?.[LABEL_START] ?? '') === spec.startId;

  /**
   * Creates this start's container: create first and look only on a name
   * conflict (the common case, no container yet, costs one engine call). A
   * container of this start (a retry) is kept; one of another start is
   * replaced (its env holds a spent bootstrap token).
   */
  async function createForStart(spec: ContainerSpec, networkId: string): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await docker.createContainer(containerOptions(spec, networkId));
        return;
      } catch (err) {
        if (isStatus(err, 404) && /no such image/i.test((err as Error).message)) {
          throw ApplicationFailure.nonRetryable(
            `image ${spec.image} is not present on this Docker host (build it with docker/agent/build.sh)`,
            'image_missing',
          );
        }
        if (!isStatus(err, 409)) throw err;
        const existing = await inspect(spec.containerName);
        if (existing && sameStart(existing, spec)) return;
        if (existing) await docker.getContainer(spec.containerName).remove({ force: true }).catch((e) => {
          if (!isStatus(e, 404)) throw e;
        });
      }
    }
    throw ApplicationFailure.retryable(`container ${spec.containerName} kept reappearing while it was being replaced`, 'container_conflict');
  }

  /**
   * Polls the agent until it answers: every 5 ms for the first second (a
   * reference agent answers ≈ 150 ms after its process starts, and a refused
   * connection on loopback costs well under a millisecond: the wait ends
   * within 5 ms of the agent being ready, where a 100 ms poll lost 50 ms on
   * average), then backing off to 100 ms; `pollMs` fixes the interval (a
   * rollout's check, where nobody waits). Whether the container died is
   * asked at most every 250 ms.
   */
  async function untilHealthy(req: { containerName: string; hostPort: number; timeoutSec: number; pollMs?: number }): Promise<void> {
    const started = Date.now();
    const deadline = started + req.timeoutSec * 1000;
    let lastError = 'no answer yet';
    let lastLook = started;
    let lastBeat = 0;
    for (let attempt = 0; Date.now() < deadline && attempt < 1_000_000; attempt++) {
      // Once a second, not every poll: each heartbeat is encoded and handed
      // to the SDK's core, and the first second polls every 5 ms.
      if (Date.now() - lastBeat >= 1000) {
        lastBeat = Date.now();
        Context.current().heartbeat({ attempt });
      }
      try {
        const res = await probe(req.hostPort);
        if (res.ok) return;
        lastError = res.detail;
      } catch (err) {
        lastError = (err as Error).message;
      }
      const now = Date.now();
      if (req.pollMs !== undefined || now - lastLook >= 250) {
        lastLook = now;
        const info = await inspect(req.containerName);
        if (!info?.State.Running) {
          const logs = await logTail(req.containerName);
          throw ApplicationFailure.nonRetryable(
            `agent container exited (code ${info?.State.ExitCode ?? '?'})${logs ? `: ${logs}` : ''}`,
            'agent_exited',
          );
        }
      }
      const elapsed = now - started;
      await Context.current().sleep(req.pollMs ?? (elapsed < 1000 ? 5 : elapsed < 5000 ? 25 : 100));
    }
    throw ApplicationFailure.nonRetryable(`agent not healthy within ${req.timeoutSec}s (${lastError})`, 'health_timeout');
  }

  return {
    /**
     * The container for this start: reused when it was made for the same start
     * (a retry), otherwise replaced, because a container's env cannot change and
     * an older one holds a bootstrap token that is already spent. Replacing
     * costs a remove and a create, ≈ 75 ms on engine 20.10 (README).
     */
    async ensureContainer(spec: ContainerSpec): Promise<{ containerId: string; created: boolean; imageId: string }> {
      const existing = await inspect(spec.containerName);
      if (existing && sameStart(existing, spec)) {
        return { containerId: existing.Id, created: false, imageId: existing.Image };
      }
      if (existing) {
        try {
          await docker.getContainer(spec.containerName).remove({ force: true });
        } catch (err) {
          if (!isStatus(err, 404)) throw err;
        }
      }
      try {
        await docker.getImage(spec.image).inspect();
      } catch (err) {
        if (isStatus(err, 404)) {
          throw ApplicationFailure.nonRetryable(
            `image ${spec.image} is not present on this Docker host (build it with docker/agent/build.sh)`,
            'image_missing',
          );
        }
        throw err;
      }
      const networkId = await networks.ensure(spec.network);
      // Never an agent on a bridge without its egress policy (a re-created network has a new bridge).
      await egress?.ensureFor(spec.network, networkId);
      await ensureVolume(spec.volumeName, labelsOf(spec));
      try {
        const c = await docker.createContainer(containerOptions(spec, networkId));
        const made = await inspect(spec.containerName);
        return { containerId: c.id, created: true, imageId: made?.Image ?? spec.image };
      } catch (err) {
        // Another attempt for this start created it between our inspect and create: that is success.
        if (isStatus(err, 409)) {
          const again = await inspect(spec.containerName);
          if (again && sameStart(again, spec)) return { containerId: again.Id, created: false, imageId: again.Image };
        }
        throw err;
      }
    },

    async startContainer(containerName: string): Promise<{ hostPort: number }> {
      const info = await inspect(containerName);
      if (!info) throw ApplicationFailure.retryable(`container ${containerName} vanished before start`, 'container_missing');
      if (!info.State.Running) {
        try {
          await docker.getContainer(containerName).start();
        } catch (err) {
          if (!isStatus(err, 304)) throw err;
        }
      }
      const after = await inspect(containerName);
      const port = after?.NetworkSettings.Ports?.[`${AGENT_PORT}/tcp`]?.[0]?.HostPort;
      if (!after?.State.Running || !port) {
        const logs = await logTail(containerName);
        throw ApplicationFailure.nonRetryable(`agent container exited at start${logs ? `: ${logs}` : ''}`, 'agent_exited');
      }
      return { hostPort: Number(port) };
    },

    /**
     * A start in one activity: this start's container made (or kept, or
     * replaced), started and polled until it answers. One task round trip
     * where ensureContainer, startContainer and waitHealthy take three, and
     * three engine calls (create, start, inspect) where they take ten: the
     * network id is the one this worker saw last (a network removed since
     * fails the start, and is then looked up again), and the volume is made
     * by the create. Idempotent like its parts.
     */
    async launchContainer(req: { spec: ContainerSpec; timeoutSec: number }): Promise<{ containerId: string; imageId: string; hostPort: number }> {
      const { spec } = req;
      const name = spec.containerName;
      for (let attempt = 1; ; attempt++) {
        Context.current().heartbeat({ phase: 'creating' });
        const networkId = await networks.ensure(spec.network, { verify: attempt > 1 });
        // Never an agent on a bridge without its egress policy (a re-created network has a new bridge).
        await egress?.ensureFor(spec.network, networkId);
        await createForStart(spec, networkId);
        Context.current().heartbeat({ phase: 'starting' });
        try {
          await docker.getContainer(name).start();
          break;
        } catch (err) {
          if (isStatus(err, 304)) break;
          // The network this worker knew is gone: drop the container made on it and look the network up again.
          if (attempt < 2 && isStatus(err, 404) && /network/i.test((err as Error).message)) {
            await docker.getContainer(name).remove({ force: true }).catch(() => undefined);
            continue;
          }
          throw err;
        }
      }
      const info = await inspect(name);
      const port = info?.NetworkSettings.Ports?.[`${AGENT_PORT}/tcp`]?.[0]?.HostPort;
      if (!info?.State.Running || !port) {
        const logs = await logTail(name);
        throw ApplicationFailure.nonRetryable(`agent container exited at start${logs ? `: ${logs}` : ''}`, 'agent_exited');
      }
      await untilHealthy({ containerName: name, hostPort: Number(port), timeoutSec: req.timeoutSec });
      return { containerId: info.Id, imageId: info.Image, hostPort: Number(port) };
    },

    /** pollMs: unset for a user's start (fast first polls: they wait), 5000 for a rollout's check (nobody waits, the host is busy). */
    async waitHealthy(req: { containerName: string; hostPort: number; timeoutSec: number; pollMs?: number }): Promise<void> {
      await untilHealthy(req);
    },

    async stopContainer(req: { containerName: string; timeoutSec?: number }): Promise<void> {
      try {
        await docker.getContainer(req.containerName).stop({ t: req.timeoutSec ?? 10 });
      } catch (err) {
        if (!isStatus(err, 304) && !isStatus(err, 404)) throw err;
      }
    },

    async removeContainer(req: { containerName: string }): Promise<void> {
      try {
        await docker.getContainer(req.containerName).remove({ force: true });
      } catch (err) {
        if (!isStatus(err, 404) && !isStatus(err, 409)) throw err;
      }
    },

    /** Several at once (the reconciler's orphans): gone already is fine. */
    async removeContainers(req: { containerNames: string[] }): Promise<void> {
      for (const name of req.containerNames) {
        Context.current().heartbeat({ name });
        try {
          await docker.getContainer(name).remove({ force: true });
        } catch (err) {
          if (!isStatus(err, 404) && !isStatus(err, 409)) throw err;
        }
      }
    },

    /** An agent's volume, for good (a retired agent: its container is removed first). Absent is done. */
    async removeAgentVolume(req: { volumeName: string }): Promise<void> {
      try {
        await docker.getVolume(req.volumeName).remove();
      } catch (err) {
        if (!isStatus(err, 404)) throw err;
      }
    },

    async inspectContainer(containerName: string): Promise<ContainerObservation | null> {
      const info = await inspect(containerName);
      if (!info) return null;
      return {
        name: containerName,
        id: info.Id,
        agentId: info.Config.Labels?.[LABEL_AGENT_ID] ?? null,
        running: info.State.Running,
        exitCode: info.State.Running ? null : info.State.ExitCode,
      };
    },

    async listManagedContainers(instanceId: string): Promise<ContainerObservation[]> {
      const list = await docker.listContainers({
        all: true,
        filters: { label: [`${LABEL_MANAGED}=true`, `${LABEL_INSTANCE}=${instanceId}`] },
      });
      return list.map((c) => ({
        name: (c.Names[0] ?? '').replace(/^\//, ''),
        id: c.Id,
        agentId: c.Labels[LABEL_AGENT_ID] ?? null,
        running: c.State === 'running',
        exitCode: null,
      }));
    },
  };
}
