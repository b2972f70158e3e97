import type { HangarConfig } from '../config.ts';
import { agentApiBase } from '../config.ts';
import {
  agentContainerName,
  agentVolumeName,
  agentWorkflowId,
  type AgentStatus,
  type ContainerSpec,
  type OwnerKind,
} from '../contracts/agent.contract.ts';
import { randomToken, safeEqual, type Keyring } from '../crypto.ts';
import { asSystem, asUser, type Agent, type Db, type Tx } from '../db.ts';
import { NotFoundError, ValidationError } from '../errors.ts';

export interface AgentServiceDeps {
  db: Db;
  keyring: Keyring;
  config: HangarConfig;
  /** The port the API really listens on (tests use an ephemeral one). */
  apiPort?: () => number;
}

const INSTANCE_KEY = 'instance.id';

export function toPublicAgent(a: Agent) {
  return {
    id: a.id,
    status: a.status as AgentStatus,
    statusReason: a.statusReason,
    image: a.image,
    imageDigest: a.imageDigest,
    lastActiveAt: a.lastActiveAt?.toISOString() ?? null,
    idleTimeoutMin: a.idleTimeoutMin,
    updateAvailable: a.updateAvailable,
    workflowId: agentWorkflowId(a.id),
  };
}

export function createAgentService({ db, keyring, config, apiPort }: AgentServiceDeps) {
  const tokenCache = new Map<string, string>();
  let instance: Promise<string> | null = null;
  // Row-level security: a user's own agent is read as that user; work on an
  // agent by id (worker, reaper, reconciler, proxy after its own check) is
  // declared system work.
  const sys = <T>(fn: (tx: Tx) => Promise<T>) => asSystem(db, fn);
  const asOwner = <T>(ownerKind: OwnerKind, ownerId: string, fn: (tx: Tx) => Promise<T>) =>
    ownerKind === 'user' ? asUser(db, ownerId, fn) : asSystem(db, fn);

  return {
    async findOwned(ownerKind: OwnerKind, ownerId: string, name = 'default'): Promise<Agent | null> {
      return asOwner(ownerKind, ownerId, (tx) => tx.agent.findUnique({ where: { ownerKind_ownerId_name: { ownerKind, ownerId, name } } }));
    },

    /** Idempotent: concurrent first calls converge on one row via the unique key. */
    async getOrCreate(ownerKind: OwnerKind, ownerId: string, name = 'default'): Promise<Agent> {
      const existing = await this.findOwned(ownerKind, ownerId, name);
      if (existing) return existing;
      const id = crypto.randomUUID();
      try {
        return await asOwner(ownerKind, ownerId, (tx) => tx.agent.create({
          data: {
            id,
            ownerKind,
            ownerId,
            name,
            image: config.agentImage,
            dockerHostId: config.dockerHostId,
            containerName: agentContainerName(id),
            volumeName: agentVolumeName(id),
            gatewayToken: keyring.encrypt(randomToken(32)),
            idleTimeoutMin: config.idleTimeoutMin,
          },
        }));
      } catch (err) {
        if ((err as { code?: string }).code === 'P2002') {
          const row = await this.findOwned(ownerKind, ownerId, name);
          if (row) return row;
        }
        throw err;
      }
    },

    async get(agentId: string): Promise<Agent> {
      const row = await sys((tx) => tx.agent.findUnique({ where: { id: agentId } }));
      if (!row) throw new NotFoundError('Agent');
      return row;
    },

    /** This installation's id, made once and kept in the database. */
    instanceId(): Promise<string> {
      instance ??= (async () => {
        const row = await db.systemConfig.upsert({
          where: { key: INSTANCE_KEY },
          create: { key: INSTANCE_KEY, value: crypto.randomUUID() },
          update: {},
        });
        return row.value;
      })().catch((err) => {
        instance = null;
        throw err;
      });
      return instance;
    },

    async containerSpec(agentId: string): Promise<ContainerSpec> {
      const a = await this.get(agentId);
      return {
        agentId: a.id,
        instanceId: await this.instanceId(),
        ownerKind: a.ownerKind as OwnerKind,
        ownerId: a.ownerId,
        containerName: a.containerName,
        volumeName: a.volumeName,
        // Pinned to the digest it runs: moving a tag never changes an agent behind a rollout's back.
        image: a.imageDigest ?? a.image,
        network: config.agentNetwork,
        env: {
          HANGAR_CONFIG_URL: `${agentApiBase(config, apiPort?.())}/api/internal/agent-config/${a.ownerKind}/${a.id}`,
          HANGAR_AGENT_ID: a.id,
        },
        secretEnv: { HANGAR_GATEWAY_TOKEN: a.gatewayToken },
        memoryMb: config.agentMemoryMb,
        tmpfsMb: config.agentTmpfsMb,
        cpus: config.agentCpus,
        pids: config.agentPids,
        healthTimeoutSec: config.agentStartTimeoutSec,
      };
    },

    async recordState(
      agentId: string,
      patch: {
        status: AgentStatus;
        containerId: string | null;
        gatewayPort: number | null;
        statusReason: string | null;
        imageDigest?: string;
      },
    ): Promise<void> {
      await sys(async (tx) => {
        const row = await tx.agent.update({
          where: { id: agentId },
          // A start counts as activity: the reaper must not stop an agent that just came up.
          data: { ...patch, ...(patch.status === 'running' ? { lastActiveAt: new Date() } : {}) },
        });
        // Running the offered digest (however it got there) settles the offer.
        if (patch.imageDigest && row.updateDigest === patch.imageDigest) {
          await tx.agent.update({ where: { id: agentId }, data: { updateAvailable: false, updateDigest: null, updateRolloutId: null } });
        }
      });
    },

    async isIdle(agentId: string, now = new Date()): Promise<boolean> {
      const a = await sys((tx) => tx.agent.findUnique({ where: { id: agentId } }));
      if (!a) return true;
      // System agents are always on.
      if (a.ownerKind === 'system') return false;
      const last = a.lastActiveAt?.getTime() ?? 0;
      return now.getTime() - last >= a.idleTimeoutMin * 60_000;
    },

    async findIdleAgentIds(now = new Date(), limit = 500): Promise<string[]> {
      const running = await sys((tx) => tx.agent.findMany({
        where: { status: 'running', ownerKind: { not: 'system' } },
        select: { id: true, lastActiveAt: true, idleTimeoutMin: true },
        take: limit,
      }));
      return running
        .filter((a) => now.getTime() - (a.lastActiveAt?.getTime() ?? 0) >= a.idleTimeoutMin * 60_000)
        .map((a) => a.id);
    },

    async listForReconcile(dockerHostId: string) {
      return sys((tx) => tx.agent.findMany({
        where: { dockerHostId },
        select: { id: true, status: true, containerName: true },
      }));
    },

    listSystemAgents() {
      return sys((tx) => tx.agent.findMany({ where: { ownerKind: 'system' }, orderBy: { createdAt: 'asc' } }));
    },

    async existingIds(ids: string[]): Promise<string[]> {
      if (ids.length === 0) return [];
      const rows = await sys((tx) => tx.agent.findMany({ where: { id: { in: ids } }, select: { id: true } }));
      return rows.map((r) => r.id);
    },

    async touch(agentId: string, at = new Date()): Promise<void> {
      await sys((tx) => tx.agent.update({ where: { id: agentId }, data: { lastActiveAt: at } }));
    },

    async setIdleTimeout(agentId: string, minutes: number): Promise<Agent> {
      if (!Number.isInteger(minutes) || minutes < 1 || minutes > 1440) {
        throw new ValidationError('idleTimeoutMin must be an integer from 1 to 1440');
      }
      return sys((tx) => tx.agent.update({ where: { id: agentId }, data: { idleTimeoutMin: minutes } }));
    },

    /** Plaintext gateway token, for the proxy; cached because it never changes for an agent. */
    gatewayToken(agent: Agent): string {
      let t = tokenCache.get(agent.id);
      if (!t) {
        t = keyring.decrypt(agent.gatewayToken);
        tokenCache.set(agent.id, t);
      }
      return t;
    },

    /** Constant-time check of a bearer token against the agent it claims to be. */
    async verifyGatewayToken(ownerKind: string, agentId: string, bearer: string | undefined): Promise<Agent | null> {
      const row = await sys((tx) => tx.agent.findUnique({ where: { id: agentId } })).catch(() => null);
      const expected = row && row.ownerKind === ownerKind ? this.gatewayToken(row) : randomToken(32);
      const ok = safeEqual(bearer ?? '', expected);
      return ok && row && row.ownerKind === ownerKind ? row : null;
    },
  };
}

export type AgentService = ReturnType<typeof createAgentService>;
