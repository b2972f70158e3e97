import type { ContainerSpec } from '../core/contracts/agent.contract.ts';
import { businessErrorsFinal } from '../core/control/failures.ts';
import type { AgentService, SpecPurpose, StatePatch } from '../core/services/agents.service.ts';
import type { RolloutService } from '../core/services/rollouts.service.ts';
import type { SettingsService } from '../core/services/settings.service.ts';

// Database side of the agent workflows; thin wrappers over core services so
// the API and the workflows share one rule for each thing.

export function createAgentActivities({ agents, settings, rollouts }: { agents: AgentService; settings: SettingsService; rollouts: RolloutService }) {
  return {
    getContainerSpec(agentId: string, purpose?: SpecPurpose): Promise<ContainerSpec> {
      return businessErrorsFinal(() => agents.containerSpec(agentId, purpose));
    },

    /** Marks the row and mints this start's spec in one transaction (a local activity of the lifecycle). */
    beginAgentStart(agentId: string, patch: StatePatch): Promise<ContainerSpec> {
      return businessErrorsFinal(() => agents.beginStart(agentId, patch));
    },

    recordAgentState(agentId: string, patch: StatePatch): Promise<void> {
      return businessErrorsFinal(() => agents.recordState(agentId, patch));
    },

    isAgentIdle(agentId: string): Promise<boolean> {
      return agents.isIdle(agentId);
    },

    findIdleAgents(): Promise<string[]> {
      return agents.findIdleAgentIds();
    },

    listAgentsOnHost(dockerHostId: string) {
      return agents.listForReconcile(dockerHostId);
    },

    existingAgentIds(ids: string[]): Promise<string[]> {
      return agents.existingIds(ids);
    },

    getInstanceId(): Promise<string> {
      return settings.instanceId();
    },

    listDockerHosts(): Promise<string[]> {
      return agents.listDockerHostIds();
    },

    async recordFleetEvent(event: { type: string; agentId?: string; payload: Record<string, unknown> }): Promise<void> {
      await rollouts.recordEvent(event);
    },

    async recordFleetEvents(events: Array<{ type: string; agentId?: string; payload: Record<string, unknown> }>): Promise<void> {
      await rollouts.recordEvents(events);
    },
  };
}
