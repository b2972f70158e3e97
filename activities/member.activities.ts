import type { AgentMember, MemberSyncPlan, WorkspaceRole } from '../core/contracts/workspace.contract.ts';
import { businessErrorsFinal } from '../core/control/failures.ts';
import type { Core } from '../core/hangar.ts';

// Control-queue side of member provisioning: what the database says (the
// truth), what the agent confirmed, and the drift check's list. The push
// itself runs on the agent's Docker host (member-push.activities.ts).

type MemberCore = Pick<Core, 'workspaces' | 'agents' | 'temporal'>;

export function createMemberActivities({ core }: { core: MemberCore }) {
  return {
    /** Members from the database and where the workspace agent answers (its sealed gateway token: decrypted only on the host). */
    async memberSyncPlan(workspaceId: string): Promise<MemberSyncPlan> {
      return businessErrorsFinal(async () => {
        const subject = await core.workspaces.syncSubject(workspaceId);
        const agent = await core.agents.findOwned('workspace', workspaceId);
        const running = agent && agent.status === 'running' && agent.gatewayPort;
        return {
          workspaceId,
          archived: subject.archived || !subject.exists,
          members: subject.members,
          agent: running ? { agentId: agent.id, dockerHostId: agent.dockerHostId, port: agent.gatewayPort!, sealedToken: agent.gatewayToken } : null,
        };
      });
    },

    /** The agent's list after a push: whoever it has in their current role is provisioned. */
    recordMembersProvisioned(req: { workspaceId: string; members: AgentMember[] }): Promise<number> {
      return core.workspaces.recordProvisioned(req.workspaceId, req.members.map((m) => ({ userId: m.userId, role: m.role as WorkspaceRole })));
    },

    workspacesWithRunningAgents(): Promise<string[]> {
      return core.workspaces.withRunningAgents();
    },

    /** Signal-with-start of one workspace's memberProvisioning (through the port). */
    async requestMemberSync(req: { workspaceId: string; reason: string }): Promise<void> {
      await core.temporal.members.sync(req.workspaceId, req.reason);
    },
  };
}
