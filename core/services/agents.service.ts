import type { HangarConfig } from '../config.ts';
import { agentApiBase } from '../config.ts';
import {
  agentContainerName,
  agentVolumeName,
  agentWorkflowId,
  type AgentStatus,
  type ContainerSpec,
  OWNER_KINDS,
  type OwnerKind,
} from '../contracts/agent.contract.ts';
import { randomToken, safeEqual, sha256, type Keyring } from '../crypto.ts';
import { asSystem, asUser, type Agent, type Db, type Tx } from '../db.ts';
import { ConflictError, NotFoundError, RateLimitedError, ValidationError } from '../errors.ts';
import type { LookupCache } from './lookup-cache.service.ts';
import type { SettingsService } from './settings.service.ts';

export interface AgentServiceDeps {
  db: Db;
  keyring: Keyring;
  config: HangarConfig;
  settings: SettingsService;
  /** The port the API really listens on (tests use an ephemeral one). */
  apiPort?: () => number;
  /** The API's in-memory lookups (absent in the worker and CLI). */
  cache?: LookupCache;
}

const MB = 1024 * 1024;

/** What the lifecycle writes on its agent's row at each step. */
export interface StatePatch {
  status: AgentStatus;
  containerId: string | null;
  gatewayPort: number | null;
  statusReason: string | null;
  imageDigest?: string;
}

/**
 * What a container spec is for. `start` and `update` mint a new bootstrap
 * token (each container Hangar creates gets its own); `start` also refuses an
 * agent over its storage cap. `describe` mints nothing (names and labels only).
 */
export type SpecPurpose = 'start' | 'update' | 'describe';

/** Storage figures as the API shows them (bytes as a number: exact below 8 PiB). */
export function storageView(a: Pick<Agent, 'storageBytes' | 'storageMeasuredAt'>) {
  return {
    storageBytes: a.storageBytes === null ? null : Number(a.storageBytes),
    storageMeasuredAt: a.storageMeasuredAt?.toISOString() ?? null,
  };
}

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

export function createAgentService({ db, keyring, config, settings, apiPort, cache }: AgentServiceDeps) {
  const tokenCache = new Map<string, { sealed: string; plain: string }>();
  // Row-level security: a user's own agent is read as that user; work on an
  // agent by id (worker, reaper, reconciler, proxy after its own check) is
  // declared system work.
  const sys = <T>(fn: (tx: Tx) => Promise<T>) => asSystem(db, fn);
  const asOwner = <T>(ownerKind: OwnerKind, ownerId: string, fn: (tx: Tx) => Promise<T>) =>
    ownerKind === 'user' ? asUser(db, ownerId, fn) : asSystem(db, fn);

  /**
   * A fresh single-use token for the container about to be created: only its
   * hash is kept, and it is spent by the container's one config fetch.
   */
  function mintBootstrap() {
    const token = randomToken(32);
    return {
      startId: crypto.randomUUID(),
      // HANGAR_GATEWAY_TOKEN keeps its name for images built against it; it now holds the bootstrap token.
      secretEnv: { HANGAR_GATEWAY_TOKEN: keyring.encrypt(token) },
      data: { bootstrapTokenHash: sha256(token), bootstrapExpiresAt: new Date(Date.now() + config.bootstrapTokenTtlSec * 1000) },
    };
  }

  async function specOf(a: Agent, bootstrap: { startId: string; secretEnv: Record<string, string> } | null): Promise<ContainerSpec> {
    return {
      agentId: a.id,
      instanceId: await settings.instanceId(),
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
      secretEnv: bootstrap?.secretEnv ?? {},
      startId: bootstrap?.startId ?? '',
      memoryMb: config.agentMemoryMb,
      tmpfsMb: config.agentTmpfsMb,
      cpus: config.agentCpus,
      pids: config.agentPids,
      healthTimeoutSec: config.agentStartTimeoutSec,
    };
  }

  return {
    async findOwned(ownerKind: OwnerKind, ownerId: string, name = 'default'): Promise<Agent | null> {
      return asOwner(ownerKind, ownerId, (tx) => tx.agent.findUnique({ where: { ownerKind_ownerId_name: { ownerKind, ownerId, name } } }));
    },

    /**
     * findOwned for the chat path: from memory while the row is unchanged
     * (lookup-cache.service.ts says how a change reaches every API process).
     * Fields that change without notice (activity, storage) may be stale.
     */
    async findOwnedForRouting(ownerKind: OwnerKind, ownerId: string, name = 'default'): Promise<Agent | null> {
      const hit = cache?.getAgent(ownerKind, ownerId, name);
      if (hit) return hit;
      const mark = cache?.mark() ?? 0;
      const row = await this.findOwned(ownerKind, ownerId, name);
      if (row) cache?.setAgent(row, mark);
      return row;
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

    /**
     * An owner's agent by name, made if absent, unless the owner runs `cap`
     * agents already (429 `code`). One advisory lock per owner, so racing
     * creates cannot both slip under the cap. For federation peers.
     */
    async getOrCreateCapped(ownerKind: OwnerKind, ownerId: string, name: string, cap: { max: number; code: string; what: string }, extra: { displayName?: string } = {}): Promise<Agent> {
      return sys(async (tx) => {
        await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext(${`agents:${ownerKind}:${ownerId}`}))`;
        const existing = await tx.agent.findUnique({ where: { ownerKind_ownerId_name: { ownerKind, ownerId, name } } });
        if (existing) return existing;
        const count = await tx.agent.count({ where: { ownerKind, ownerId } });
        if (count >= cap.max) {
          throw new RateLimitedError(`${cap.what} may run at most ${cap.max} agent${cap.max === 1 ? '' : 's'} here, and runs ${count}`, 60, cap.code);
        }
        const id = crypto.randomUUID();
        return tx.agent.create({
          data: {
            id,
            ownerKind,
            ownerId,
            name,
            displayName: extra.displayName ?? null,
            image: config.agentImage,
            dockerHostId: config.dockerHostId,
            containerName: agentContainerName(id),
            volumeName: agentVolumeName(id),
            gatewayToken: keyring.encrypt(randomToken(32)),
            idleTimeoutMin: config.idleTimeoutMin,
          },
        });
      });
    },

    /** Deletes an agent's row and its own config row (a retired federated agent); its container and volume are gone already. */
    async remove(agentId: string): Promise<boolean> {
      return sys(async (tx) => {
        const row = await tx.agent.findUnique({ where: { id: agentId } });
        if (!row) return false;
        await tx.agentConfig.deleteMany({ where: { ownerKind: row.ownerKind, ownerId: row.id } });
        await tx.agent.delete({ where: { id: agentId } });
        return true;
      });
    },

    async countOwned(ownerKind: OwnerKind, ownerId: string): Promise<number> {
      return sys((tx) => tx.agent.count({ where: { ownerKind, ownerId } }));
    },

    async listOwned(ownerKind: OwnerKind, ownerId: string): Promise<Agent[]> {
      return sys((tx) => tx.agent.findMany({ where: { ownerKind, ownerId }, orderBy: { createdAt: 'asc' } }));
    },

    async get(agentId: string): Promise<Agent> {
      const row = await sys((tx) => tx.agent.findUnique({ where: { id: agentId } }));
      if (!row) throw new NotFoundError('Agent');
      return row;
    },

    async containerSpec(agentId: string, purpose: SpecPurpose = 'describe'): Promise<ContainerSpec> {
      const a = await this.get(agentId);
      if (purpose === 'start') this.assertWithinStorageQuota(a);
      if (purpose === 'describe') return specOf(a, null);
      const bootstrap = mintBootstrap();
      await sys((tx) => tx.agent.update({ where: { id: a.id }, data: bootstrap.data }));
      return specOf(a, bootstrap);
    },

    /**
     * A start's whole database side in one transaction: the storage cap
     * checked, the row marked as the lifecycle says (`starting`) and this
     * start's bootstrap token minted. One step of the lifecycle instead of two
     * (recordState, then containerSpec).
     */
    async beginStart(agentId: string, patch: StatePatch): Promise<ContainerSpec> {
      const bootstrap = mintBootstrap();
      const row = await sys(async (tx) => {
        const a = await tx.agent.findUnique({ where: { id: agentId } });
        if (!a) throw new NotFoundError('Agent');
        this.assertWithinStorageQuota(a);
        return tx.agent.update({ where: { id: agentId }, data: { ...patch, ...bootstrap.data } });
      });
      return specOf(row, bootstrap);
    },

    /** Refuses a start while the last measurement says the volume is over the cap. */
    assertWithinStorageQuota(a: Pick<Agent, 'storageBytes' | 'storageMeasuredAt'>): void {
      const cap = config.agentStorageMb * MB;
      if (a.storageBytes === null || Number(a.storageBytes) <= cap) return;
      const used = Math.ceil(Number(a.storageBytes) / MB);
      throw new ConflictError(
        `This agent's storage is over its cap (${used} MB used, ${config.agentStorageMb} MB allowed; measured ${a.storageMeasuredAt?.toISOString() ?? 'recently'}). ` +
          'It cannot start until its volume shrinks below the cap (seen at the next measurement) or an admin raises HANGAR_AGENT_STORAGE_MB.',
        'storage_quota_exceeded',
        { storageBytes: Number(a.storageBytes), capBytes: cap },
      );
    },

    /**
     * Stores one Docker host's volume sizes on its agents' rows and returns the
     * agents now over the cap that are not stopped (the reconciler stops them).
     */
    async recordStorage(dockerHostId: string, sizes: Record<string, number>, measuredAt: Date) {
      const cap = config.agentStorageMb * MB;
      const names = Object.keys(sizes);
      const bytes = names.map((n) => BigInt(Math.max(0, Math.round(sizes[n]))));
      return sys(async (tx) => {
        // One statement for the whole host, however many agents it runs.
        const measured = names.length === 0 ? 0 : await tx.$executeRaw`
          UPDATE agents SET "storageBytes" = v.size, "storageMeasuredAt" = ${measuredAt}
          FROM unnest(${names}::text[], ${bytes}::bigint[]) AS v(name, size)
          WHERE agents."volumeName" = v.name AND agents."dockerHostId" = ${dockerHostId}`;
        const over = await tx.agent.findMany({
          where: { dockerHostId, storageBytes: { gt: BigInt(cap) }, status: { not: 'stopped' }, storageMeasuredAt: measuredAt },
          select: { id: true, status: true, storageBytes: true },
        });
        return {
          measured,
          capBytes: cap,
          over: over.map((r) => ({ id: r.id, status: r.status as AgentStatus, storageBytes: Number(r.storageBytes) })),
        };
      });
    },

    /**
     * One Docker host's health checks (fleet-reconcile): a pass resets the
     * agent's count of consecutive failures, a failure adds one (only while
     * the row says running: a start in progress is the lifecycle's business).
     * Returns the agents whose count reached HANGAR_HEALTH_FAILURES_BEFORE_RESTART,
     * with their count zeroed, so a restart asked for now is not asked again
     * before as many fresh failures. Two statements per host, however large.
     */
    async recordHealth(dockerHostId: string, results: Array<{ agentId: string; ok: boolean }>) {
      const passing = results.filter((r) => r.ok).map((r) => r.agentId);
      const failing = results.filter((r) => !r.ok).map((r) => r.agentId);
      const threshold = config.healthFailuresBeforeRestart;
      return sys(async (tx) => {
        if (passing.length > 0) {
          await tx.$executeRaw`
            UPDATE agents SET "healthFailures" = 0
            WHERE id = ANY(${passing}::text[]) AND "dockerHostId" = ${dockerHostId} AND "healthFailures" <> 0`;
        }
        if (failing.length === 0) return { failing: 0, restart: [] as Array<{ id: string; failures: number }> };
        const counted = await tx.$queryRaw<Array<{ id: string; failures: number }>>`
          UPDATE agents SET "healthFailures" = CASE WHEN "healthFailures" + 1 >= ${threshold} THEN 0 ELSE "healthFailures" + 1 END
          WHERE id = ANY(${failing}::text[]) AND "dockerHostId" = ${dockerHostId} AND status = 'running'
          RETURNING id, "healthFailures" AS failures`;
        return {
          failing: counted.length,
          restart: counted.filter((r) => r.failures === 0).map((r) => ({ id: r.id, failures: threshold })),
        };
      });
    },

    /** Running agents that failed their last health check (metrics). */
    countFailingHealth(): Promise<number> {
      return sys((tx) => tx.agent.count({ where: { status: 'running', healthFailures: { gt: 0 } } }));
    },

    async recordState(agentId: string, patch: StatePatch): Promise<void> {
      await sys(async (tx) => {
        const row = await tx.agent.update({
          where: { id: agentId },
          // A start counts as activity: the reaper must not stop an agent that just came up.
          // A fresh start also begins a fresh count of failed health checks.
          data: { ...patch, ...(patch.status === 'running' ? { lastActiveAt: new Date(), healthFailures: 0 } : {}) },
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

    /**
     * Running agents idle past their own timeout, oldest activity first. The
     * filter is SQL's (one indexed query, whatever the fleet's size), so no
     * idle agent hides behind a page of busy ones.
     */
    async findIdleAgentIds(now = new Date(), limit = 50_000): Promise<string[]> {
      const rows = await sys((tx) => tx.$queryRaw<{ id: string }[]>`
        SELECT id FROM agents
        WHERE status = 'running' AND "ownerKind" <> 'system'
          AND COALESCE("lastActiveAt", 'epoch'::timestamp) <= ${now}::timestamp - make_interval(mins => "idleTimeoutMin")
        ORDER BY "lastActiveAt" ASC NULLS FIRST
        LIMIT ${limit}`);
      return rows.map((r) => r.id);
    },

    async listForReconcile(dockerHostId: string) {
      return sys((tx) => tx.agent.findMany({
        where: { dockerHostId },
        select: { id: true, status: true, containerName: true },
      }));
    },

    /** The rows of one host that say their container runs (all the reconciler compares). */
    listRunningOnHost(dockerHostId: string): Promise<Array<{ id: string; containerName: string }>> {
      return sys((tx) => tx.agent.findMany({ where: { dockerHostId, status: 'running' }, select: { id: true, containerName: true } }));
    },

    /** Rows whose lifecycle is gone, marked stopped in one statement (the reconciler). */
    async markStopped(agentIds: string[], reason: string): Promise<void> {
      if (agentIds.length === 0) return;
      await sys((tx) => tx.agent.updateMany({
        where: { id: { in: agentIds } },
        data: { status: 'stopped', containerId: null, gatewayPort: null, statusReason: reason },
      }));
    },

    /** Every agent's status for admins (declared system work; the route's schema narrows what leaves), with owner names. */
    async listForAdmin(page: number, limit: number, onlyId?: string) {
      return sys(async (tx) => {
        const where = onlyId ? { id: onlyId } : {};
        const [total, rows] = [
          await tx.agent.count({ where }),
          await tx.agent.findMany({ where, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }], skip: (page - 1) * limit, take: limit }),
        ];
        const userIds = rows.filter((a) => a.ownerKind === 'user').map((a) => a.ownerId);
        const users = await tx.user.findMany({ where: { id: { in: userIds } }, select: { id: true, displayName: true } });
        const names = new Map(users.map((u) => [u.id, u.displayName]));
        return { total, rows: rows.map((a) => ({ agent: a, ownerName: a.ownerKind === 'user' ? (names.get(a.ownerId) ?? null) : a.ownerId })) };
      });
    },

    /** Each measured agent's volume size (metrics). */
    measuredStorage() {
      return sys((tx) => tx.agent.findMany({
        where: { storageBytes: { not: null } },
        select: { id: true, ownerKind: true, dockerHostId: true, storageBytes: true },
      }));
    },

    countOverStorage(capBytes: number): Promise<number> {
      return sys((tx) => tx.agent.count({ where: { storageBytes: { gt: BigInt(capBytes) } } }));
    },

    /** Agents per status, fleet-wide (metrics). */
    async countByStatus(): Promise<Record<string, number>> {
      const rows = await sys((tx) => tx.agent.groupBy({ by: ['status'], _count: { _all: true } }));
      return Object.fromEntries(rows.map((r) => [r.status, r._count._all]));
    },

    /** The Docker engines workers serve; a worker registers its own at start. */
    async registerDockerHost(id: string, endpoint: string): Promise<void> {
      await db.dockerHost.upsert({
        where: { id },
        create: { id, endpoint, labels: {}, capacity: 100, status: 'active' },
        update: { status: 'active' },
      });
    },

    async listDockerHostIds(): Promise<string[]> {
      const hosts = await db.dockerHost.findMany({ where: { status: { not: 'disabled' } }, select: { id: true } });
      return hosts.map((h) => h.id);
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

    /**
     * Plaintext gateway token, for the proxy. Cached by ciphertext: every start
     * replaces it, and the proxy reads the row per request, so a new token is
     * used as soon as it exists and the old one is never used again.
     */
    gatewayToken(agent: Agent): string {
      const cached = tokenCache.get(agent.id);
      if (cached?.sealed === agent.gatewayToken) return cached.plain;
      const plain = keyring.decrypt(agent.gatewayToken);
      tokenCache.set(agent.id, { sealed: agent.gatewayToken, plain });
      return plain;
    },

    /**
     * A running agent calling Hangar with its gateway token (its workspace
     * files). Constant-time; anything but this agent's current token is null.
     */
    async verifyGatewayToken(ownerKind: string, agentId: string, bearer: string | undefined): Promise<Agent | null> {
      const row = await sys((tx) => tx.agent.findUnique({ where: { id: agentId } }));
      const expected = row && row.ownerKind === ownerKind ? this.gatewayToken(row) : randomToken(32);
      const ok = safeEqual(bearer ?? '', expected);
      return ok && row && row.ownerKind === ownerKind ? row : null;
    },

    /**
     * The config fetch of a start: a valid, unexpired bootstrap token of this
     * agent is spent (one conditional UPDATE, so two racing fetches cannot both
     * win) and a new gateway token is sealed onto the row in the same write.
     * Anything else — wrong, spent, expired, another agent's — is null.
     */
    async exchangeBootstrapToken(ownerKind: string, agentId: string, bearer: string | undefined): Promise<{ agent: Agent; gatewayToken: string } | null> {
      if (!bearer || !(OWNER_KINDS as readonly string[]).includes(ownerKind)) return null;
      const gatewayToken = randomToken(32);
      let agent: Agent;
      try {
        // One statement that also answers the row (it is on every start's path).
        agent = await sys((tx) => tx.agent.update({
          where: {
            id: agentId,
            ownerKind: ownerKind as OwnerKind,
            bootstrapTokenHash: sha256(bearer),
            bootstrapExpiresAt: { gt: new Date() },
          },
          data: { bootstrapTokenHash: null, bootstrapExpiresAt: null, gatewayToken: keyring.encrypt(gatewayToken) },
        }));
      } catch (err) {
        // P2025: no row matched (wrong, spent or expired token, or another agent's).
        if ((err as { code?: string }).code === 'P2025') return null;
        throw err;
      }
      cache?.apply({ t: 'agents', id: agentId });
      tokenCache.set(agent.id, { sealed: agent.gatewayToken, plain: gatewayToken });
      return { agent, gatewayToken };
    },
  };
}

export type AgentService = ReturnType<typeof createAgentService>;
