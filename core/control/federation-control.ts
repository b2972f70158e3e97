import type { HangarConfig } from '../config.ts';
import {
  DEFAULT_FEDERATION_SETTINGS,
  PEER_AGENT_LIMIT,
  type AgentRefPayload,
  type CommandAnswer,
  type CommandEnvelope,
  type CommandType,
  type RemoteAgentReport,
  type RemoteAgentStatus,
  type SpawnPayload,
} from '../contracts/federation.contract.ts';
import type { Agent, FederatedAgent, FederationPeer } from '../db.ts';
import { ConflictError, ForbiddenError } from '../errors.ts';
import type { AgentConfigService } from '../services/agent-config.service.ts';
import type { AgentService } from '../services/agents.service.ts';
import { COMMANDS_PATH, type FederationClient } from '../services/federation-client.service.ts';
import type { FederationIdentityService } from '../services/federation-identity.service.ts';
import { acceptsFrom, sendsTo, type FederationService } from '../services/federation.service.ts';
import type { RolloutService } from '../services/rollouts.service.ts';
import type { TemporalPort } from './temporal.port.ts';

/** How long a spoke's kill answer waits for the agent to be gone before answering 202 `stopping`. */
const KILL_WAIT_MS = 15_000;

function report(ref: string, agent: Agent | null, startedNow = false): RemoteAgentReport {
  if (!agent) return { ref, remoteAgentId: null, status: 'removed', statusReason: null };
  // A spawn answers before the lifecycle has recorded `starting`: say what is under way.
  const status = (startedNow && agent.status === 'stopped' ? 'starting' : agent.status) as RemoteAgentStatus;
  return { ref, remoteAgentId: agent.id, status, statusReason: agent.statusReason };
}

/**
 * Both sides of federation. The hub starts one `federationCommand` workflow
 * per remote agent and tells it to kill; the workflow's activities send the
 * signed commands (`send`). The spoke (`handle`) runs what a verified peer
 * asks through its own agents' lifecycles, under the peer's agent limit.
 */
export function createFederationControl(deps: {
  temporal: TemporalPort;
  config: Pick<HangarConfig, 'federationStatusIntervalSec'>;
  federation: FederationService;
  identity: FederationIdentityService;
  client: FederationClient;
  agents: AgentService;
  agentConfigs: AgentConfigService;
  rollouts: RolloutService;
}) {
  const { temporal, federation, agents } = deps;

  /** A model the peer's provider here offers, as `<provider>/<model>`; anything else is dropped (the agent uses its default). */
  async function modelFor(peer: FederationPeer, preference: string | null | undefined): Promise<string | null> {
    if (!preference || !peer.providerId) return null;
    const provider = await federation.provider(peer.providerId);
    if (!provider) return null;
    const id = preference.startsWith(`${provider.name}/`) ? preference.slice(provider.name.length + 1) : preference;
    return provider.models.some((m) => m.id === id) ? `${provider.name}/${id}` : null;
  }

  return {
    workflowUrl: (workflowId: string) => temporal.workflowUrl(workflowId),

    // --- hub ---

    async spawnRemote(peerId: string, input: { name: string; primaryModel?: string | null }, actorId: string | null): Promise<FederatedAgent> {
      const peer = await federation.getPeer(peerId);
      if (!sendsTo(peer)) throw new ConflictError(`Peer "${peer.name}" is inbound only: this instance does not send it commands`, 'peer_not_outbound');
      const row = await federation.createRemoteAgent(peer, { name: input.name, primaryModel: input.primaryModel ?? null, createdById: actorId });
      await temporal.federation.start(row.workflowId, {
        federatedAgentId: row.id,
        peerId: peer.id,
        name: row.name,
        primaryModel: row.primaryModel,
        settings: { ...DEFAULT_FEDERATION_SETTINGS, statusIntervalSec: deps.config.federationStatusIntervalSec },
      }, `Agent "${row.name}" on peer ${peer.name}`);
      return row;
    },

    /** Tells the agent's workflow to kill it; waits up to `waitMs` for it to be gone. */
    async killRemote(id: string, reason: string, waitMs = 0): Promise<FederatedAgent> {
      const row = await federation.getRemoteAgent(id);
      if (['removed', 'refused'].includes(row.status)) return row;
      if (!(await temporal.federation.kill(row.workflowId, reason))) {
        // Its workflow has ended (the spawn failed, or an earlier kill was not confirmed): a new run of the same id only kills.
        await temporal.federation.start(row.workflowId, {
          federatedAgentId: row.id,
          peerId: row.peerId,
          name: row.name,
          primaryModel: row.primaryModel,
          settings: { ...DEFAULT_FEDERATION_SETTINGS, statusIntervalSec: deps.config.federationStatusIntervalSec },
          state: { federatedAgentId: row.id, phase: 'killing', report: null, killReason: reason, lastError: null },
        }, `Kill agent "${row.name}" on its peer`);
      }
      const deadline = Date.now() + waitMs;
      for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
        await new Promise((r) => setTimeout(r, 250));
        const now = await federation.getRemoteAgent(id);
        if (['removed', 'refused', 'error'].includes(now.status)) return now;
      }
      return federation.getRemoteAgent(id);
    },

    /** Removes a peer: what we run there is killed, what it runs here is stopped and removed. */
    async removePeer(id: string): Promise<{ peer: FederationPeer; killing: number; retiring: number }> {
      const peer = await federation.removePeer(id);
      const remote = await federation.liveRemoteAgents(peer.id);
      for (const a of remote) await temporal.federation.kill(a.workflowId, 'peer_removed');
      const local = await agents.listOwned('federated', peer.id);
      for (const a of local) await temporal.federation.retire(a, 'peer_removed', 0);
      return { peer, killing: remote.length, retiring: local.length };
    },

    /** One signed command to a peer and its verified answer (the workflow's activity). */
    async send(peerId: string, type: CommandType, commandId: string, payload: SpawnPayload | AgentRefPayload): Promise<RemoteAgentReport> {
      const peer = await federation.peerForCommands(peerId);
      if (peer.removedAt && type === 'agent.spawn') throw new ConflictError(`Peer "${peer.name}" was removed`, 'peer_removed');
      const signer = await deps.identity.signer();
      const { answer } = await deps.client.send({
        connectUrl: peer.url,
        targetUri: `${peer.instanceUrl}${COMMANDS_PATH}`,
        envelope: { id: commandId, from: signer.keyid, type, payload },
        signer,
        peerInstanceId: peer.instanceId,
        peerKeys: federation.keysOf(peer),
      });
      if (!peer.removedAt) await federation.touchPeer(peer.id);
      // Heard from: the hub's row says when, whether or not the status changed.
      await federation.touchRemoteAgent(payload.ref);
      return answer.agent;
    },

    // --- spoke ---

    /** Runs a verified peer's command. The peer is known, accepted inbound, and its nonce fresh. */
    async handle(peer: FederationPeer, env: CommandEnvelope): Promise<{ status: 200 | 202; answer: CommandAnswer }> {
      if (!acceptsFrom(peer)) throw new ForbiddenError(`Peer "${peer.name}" may not send commands here (its direction is ${peer.direction})`, 'peer_not_inbound');
      const answer = (agent: RemoteAgentReport) => ({ id: env.id, type: env.type, agent });
      const { ref } = env.payload;
      if (env.type === 'agent.spawn') {
        const p = env.payload as SpawnPayload;
        const agent = await agents.getOrCreateCapped('federated', peer.id, ref, { max: peer.agentLimit, code: PEER_AGENT_LIMIT, what: `Peer "${peer.name}"` }, { displayName: p.name });
        // Its own config: the hub's model preference (when our provider for this peer offers it) and that provider.
        await deps.agentConfigs.putFor('federated', agent.id, { primaryModel: await modelFor(peer, p.primaryModel), fallbackModels: [], personality: null, providerId: peer.providerId });
        const starting = agent.status !== 'running';
        if (starting) await temporal.agents.beginRunning(agent);
        await deps.rollouts.recordEvent({ type: 'federation.agent_spawned', agentId: agent.id, payload: { peerId: peer.id, ref, commandId: env.id } });
        return { status: 202, answer: answer(report(ref, await agents.get(agent.id), starting)) };
      }
      const agent = await agents.findOwned('federated', peer.id, ref);
      if (env.type === 'agent.status') return { status: 200, answer: answer(report(ref, agent)) };
      if (!agent) return { status: 200, answer: answer(report(ref, null)) };
      await deps.rollouts.recordEvent({ type: 'federation.agent_killed', agentId: agent.id, payload: { peerId: peer.id, ref, commandId: env.id } });
      const gone = await temporal.federation.retire(agent, 'federation_kill', KILL_WAIT_MS);
      if (gone) return { status: 200, answer: answer(report(ref, null)) };
      return { status: 202, answer: answer({ ...report(ref, agent), status: 'stopping' }) };
    },
  };
}

export type FederationControl = ReturnType<typeof createFederationControl>;
