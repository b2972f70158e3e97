import { Context } from '@temporalio/activity';
import type { AgentRefPayload, CommandType, FederatedAgentStatus, RemoteAgentReport, SpawnPayload } from '../core/contracts/federation.contract.ts';
import { businessErrorsFinal } from '../core/control/failures.ts';
import type { Core } from '../core/hangar.ts';

// Federation's activities on the control queue. The hub's: one signed
// command to a peer (a peer that does not answer, or answers unsigned or 5xx,
// fails retryably; a refusal is final and carries the peer's code), and the
// record of where the remote agent is. The spoke's: the steps of retiring an
// agent (its lifecycle stops and ends, its row goes; the Docker steps run on
// its host's queue).

export function createFederationActivities({ core }: { core: Pick<Core, 'federationControl' | 'federation' | 'temporal' | 'agents' | 'rollouts'> }) {
  return {
    sendFederationCommand(req: { peerId: string; type: CommandType; commandId: string; payload: SpawnPayload | AgentRefPayload }): Promise<RemoteAgentReport> {
      return businessErrorsFinal(() => core.federationControl.send(req.peerId, req.type, req.commandId, req.payload));
    },

    recordFederatedAgent(req: { id: string; status: FederatedAgentStatus; statusReason?: string | null; report?: RemoteAgentReport | null }): Promise<void> {
      return businessErrorsFinal(() => core.federation.recordRemoteAgent(req.id, req));
    },

    async recordFederationEvent(event: { type: string; payload: Record<string, unknown> }): Promise<void> {
      await core.rollouts.recordEvent(event);
    },

    /** The agent's own lifecycle stops it (queued behind whatever it is doing); the update id makes a retry attach to the same stop. */
    async stopAgentForRetire(req: { agentId: string; reason: string }): Promise<void> {
      const beat = setInterval(() => Context.current().heartbeat(), 5000);
      try {
        await businessErrorsFinal(() => core.temporal.agents.stop(req.agentId, req.reason, `retire/${req.agentId}`));
      } finally {
        clearInterval(beat);
      }
    },

    async endAgentLifecycle(req: { agentId: string; reason: string }): Promise<void> {
      await businessErrorsFinal(() => core.temporal.agents.terminate(req.agentId, `retired: ${req.reason}`));
    },

    async deleteRetiredAgent(req: { agentId: string; reason: string }): Promise<void> {
      await businessErrorsFinal(async () => {
        const row = await core.agents.get(req.agentId).catch(() => null);
        if (!(await core.agents.remove(req.agentId))) return;
        await core.rollouts.recordEvent({ type: 'agent.retired', agentId: req.agentId, payload: { reason: req.reason, ownerKind: row?.ownerKind, ownerId: row?.ownerId } });
      });
    },
  };
}
