import type { FederatedAgentStatus, RemoteAgentReport } from '../contracts/federation.contract.ts';
import { federationWorkflowId } from '../contracts/federation.contract.ts';
import { SIGNATURE_WINDOW_SEC, fingerprintOf, type KeyFinder } from '../federation-signatures.ts';
import { asSystem, type Db, type FederatedAgent, type FederationPeer } from '../db.ts';
import { ConflictError, NotFoundError, ValidationError } from '../errors.ts';
import { normalizePeerUrl, type FederationClient } from './federation-client.service.ts';
import type { FederationIdentityService } from './federation-identity.service.ts';

// Federation's records: peers (pinned keys, direction, agent limit), the
// replay cache of signed commands, and the hub's rows for the agents it runs
// on peers. The spoke's side of a federated agent is an ordinary `agents`
// row of owner kind `federated`, owned by the peer.

export type PeerDirection = 'outbound' | 'inbound' | 'both';
export const sendsTo = (p: Pick<FederationPeer, 'direction'>) => p.direction === 'outbound' || p.direction === 'both';
export const acceptsFrom = (p: Pick<FederationPeer, 'direction'>) => p.direction === 'inbound' || p.direction === 'both';

/** Replay cache entries outlive the accepted window on both sides of `created`. */
const NONCE_TTL_MS = (2 * SIGNATURE_WINDOW_SEC + 60) * 1000;

export function peerView(p: FederationPeer) {
  return {
    id: p.id,
    name: p.name,
    url: p.url,
    instanceId: p.instanceId,
    instanceUrl: p.instanceUrl,
    publicKey: p.publicKey,
    fingerprint: p.fingerprint,
    direction: p.direction as PeerDirection,
    agentLimit: p.agentLimit,
    providerId: p.providerId,
    lastSeenAt: p.lastSeenAt?.toISOString() ?? null,
    createdAt: p.createdAt.toISOString(),
  };
}

export function federatedAgentView(a: FederatedAgent) {
  return {
    id: a.id,
    peerId: a.peerId,
    name: a.name,
    primaryModel: a.primaryModel,
    status: a.status as FederatedAgentStatus,
    statusReason: a.statusReason,
    remoteAgentId: a.remoteAgentId,
    workflowId: a.workflowId,
    lastSeenAt: a.lastSeenAt?.toISOString() ?? null,
    createdAt: a.createdAt.toISOString(),
  };
}

export interface NewPeer {
  name: string;
  url: string;
  /** The key the admin expects: its fingerprint (SHA256:…) or the raw public key; one is required. */
  fingerprint?: string;
  publicKey?: string;
  direction?: PeerDirection;
  agentLimit?: number;
  providerId?: string | null;
}

export function createFederationService({ db, client, identity, graceHours, recordEvent }: {
  db: Db;
  client: FederationClient;
  identity: FederationIdentityService;
  graceHours: number;
  /** Fleet events (the rollout service's): a peer's pinned key changing is never silent. */
  recordEvent: (e: { type: string; payload: object }) => Promise<void>;
}) {
  const sys = <T>(fn: Parameters<typeof asSystem<T>>[1]) => asSystem(db, fn);

  async function livePeer(id: string): Promise<FederationPeer> {
    const p = await db.federationPeer.findFirst({ where: { id, removedAt: null } });
    if (!p) throw new NotFoundError('Peer');
    return p;
  }

  function keysOfPeer(p: FederationPeer) {
    const keys = [p.publicKey];
    if (p.previousPublicKey && p.previousKeyUntil && p.previousKeyUntil.getTime() > Date.now()) keys.push(p.previousPublicKey);
    return {
      keys,
      // A new key endorsed by the pinned one (it verified the message): pinned, the old kept for the grace period.
      learn: async (publicKey: string) => {
        const previousKeyUntil = new Date(Date.now() + graceHours * 3600_000);
        await db.federationPeer.update({
          where: { id: p.id },
          data: { publicKey, fingerprint: fingerprintOf(publicKey), previousPublicKey: p.publicKey, previousKeyUntil },
        });
        await recordEvent({
          type: 'federation.peer_key_rotated',
          payload: { peerId: p.id, from: p.fingerprint, to: fingerprintOf(publicKey), previousAcceptedUntil: previousKeyUntil.toISOString() },
        });
      },
    };
  }

  return {
    /** Adds a peer: fetches its identity (no redirects) and refuses a key other than the one the admin expects. */
    async addPeer(input: NewPeer) {
      const url = normalizePeerUrl(input.url);
      if (!input.fingerprint && !input.publicKey) throw new ValidationError('Give the peer\'s expected key: fingerprint (SHA256:…) or publicKey', { field: 'fingerprint' });
      const id = await client.fetchIdentity(url);
      const fingerprint = fingerprintOf(id.publicKey);
      if ((input.fingerprint && input.fingerprint !== fingerprint) || (input.publicKey && input.publicKey !== id.publicKey)) {
        throw new ConflictError(`The peer at ${url} presents key ${fingerprint}, not the one expected: not added`, 'peer_key_mismatch', { presented: fingerprint });
      }
      const ours = await identity.identity();
      if (id.instanceId === ours.instanceId) throw new ValidationError('That URL is this instance itself', { field: 'url' });
      if (input.providerId) {
        const provider = await sys((tx) => tx.llmProvider.findUnique({ where: { id: input.providerId! } }));
        if (!provider) throw new ValidationError('providerId names no provider', { field: 'providerId' });
      }
      try {
        return await db.federationPeer.create({
          data: {
            name: input.name,
            url,
            instanceId: id.instanceId,
            instanceUrl: normalizePeerUrl(id.url),
            publicKey: id.publicKey,
            fingerprint,
            direction: input.direction ?? 'both',
            agentLimit: input.agentLimit ?? 5,
            providerId: input.providerId ?? null,
          },
        });
      } catch (err) {
        if ((err as { code?: string }).code === 'P2002') throw new ConflictError('A peer with that name or instance exists already', 'peer_exists');
        throw err;
      }
    },

    async listPeers() {
      return db.federationPeer.findMany({ where: { removedAt: null }, orderBy: { createdAt: 'asc' } });
    },

    getPeer: livePeer,

    /** Any peer row, removed ones too (a removed peer's agents are still being killed). */
    async peerForCommands(id: string): Promise<FederationPeer> {
      const p = await db.federationPeer.findUnique({ where: { id } });
      if (!p) throw new NotFoundError('Peer');
      return p;
    },

    /** Marks a peer removed (its name and instance can be added again); answers the row as it was. */
    async removePeer(id: string): Promise<FederationPeer> {
      const p = await livePeer(id);
      await db.federationPeer.update({ where: { id }, data: { removedAt: new Date() } });
      return p;
    },

    /** The live peer whose instance id signs as `keyid`, for verification; null: nobody we know. */
    async peerByKeyId(keyid: string): Promise<FederationPeer | null> {
      return db.federationPeer.findFirst({ where: { instanceId: keyid, removedAt: null } });
    },

    /** Keys to verify a live peer's signatures with (its pinned key, the one it rotated from). */
    keyFinder(): KeyFinder {
      return async (keyid) => {
        const p = await this.peerByKeyId(keyid);
        return p ? keysOfPeer(p) : null;
      };
    },

    /** Keys of one peer (removed ones too: a kill after removal still reads its answers). */
    keysOf(p: FederationPeer): KeyFinder {
      return async (keyid) => (keyid === p.instanceId ? keysOfPeer(p) : null);
    },

    /**
     * Remembers a nonce of a peer; false when it was seen already (a replay).
     * Expired entries are pruned on the way, so the cache holds one window.
     */
    async rememberNonce(peerId: string, nonce: string, created: Date): Promise<boolean> {
      await db.federationNonce.deleteMany({ where: { expiresAt: { lt: new Date() } } });
      const inserted = await db.$executeRaw`
        INSERT INTO federation_nonces ("peerId", nonce, "expiresAt") VALUES (${peerId}, ${nonce}, ${new Date(created.getTime() + NONCE_TTL_MS)})
        ON CONFLICT DO NOTHING`;
      return inserted === 1;
    },

    async touchPeer(id: string): Promise<void> {
      await db.federationPeer.update({ where: { id }, data: { lastSeenAt: new Date() } });
    },

    /** The provider a peer's agents use here: its name and model ids (never its key). */
    async provider(providerId: string): Promise<{ name: string; models: Array<{ id: string }> } | null> {
      const p = await sys((tx) => tx.llmProvider.findUnique({ where: { id: providerId }, select: { name: true, models: true, isActive: true } }));
      if (!p || !p.isActive) return null;
      const models = Array.isArray(p.models) ? (p.models as Array<{ id?: unknown }>).filter((m) => typeof m?.id === 'string') as Array<{ id: string }> : [];
      return { name: p.name, models };
    },

    // --- the hub's remote agents ---

    async createRemoteAgent(peer: FederationPeer, input: { name: string; primaryModel: string | null; createdById: string | null }) {
      const id = crypto.randomUUID();
      return db.federatedAgent.create({
        data: { id, peerId: peer.id, name: input.name, primaryModel: input.primaryModel, workflowId: federationWorkflowId(peer.id, id), createdById: input.createdById },
      });
    },

    async getRemoteAgent(id: string): Promise<FederatedAgent> {
      const a = await db.federatedAgent.findUnique({ where: { id } });
      if (!a) throw new NotFoundError('Federated agent');
      return a;
    },

    listRemoteAgents(page: number, limit: number, peerId?: string) {
      const where = peerId ? { peerId } : {};
      return Promise.all([
        db.federatedAgent.count({ where }),
        db.federatedAgent.findMany({ where, orderBy: [{ createdAt: 'desc' }, { id: 'asc' }], skip: (page - 1) * limit, take: limit }),
      ]);
    },

    /** Remote agents of a peer that are not over (removed or refused). */
    liveRemoteAgents(peerId: string) {
      return db.federatedAgent.findMany({ where: { peerId, status: { notIn: ['removed', 'refused'] } } });
    },

    async touchRemoteAgent(id: string): Promise<void> {
      await db.federatedAgent.updateMany({ where: { id }, data: { lastSeenAt: new Date() } });
    },

    /** The workflow's record of where a remote agent is (its only writer). */
    async recordRemoteAgent(id: string, patch: { status: FederatedAgentStatus; statusReason?: string | null; report?: RemoteAgentReport | null }): Promise<void> {
      await db.federatedAgent.update({
        where: { id },
        data: {
          status: patch.status,
          statusReason: patch.statusReason ?? null,
          ...(patch.report?.remoteAgentId ? { remoteAgentId: patch.report.remoteAgentId } : {}),
          ...(patch.report ? { lastSeenAt: new Date() } : {}),
        },
      });
    },
  };
}

export type FederationService = ReturnType<typeof createFederationService>;
