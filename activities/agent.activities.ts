import { ApplicationFailure } from '@temporalio/common';
import type { ContainerSpec } from '../core/contracts/agent.contract.ts';
import { AppError } from '../core/errors.ts';
import type { AgentService, SpecPurpose } from '../core/services/agents.service.ts';
import type { Db } from '../core/db.ts';

// Database side of the agent workflows; thin wrappers over core services so
// the API and the workflows share one rule for each thing.

/** Business errors must not be retried: turn them into non-retryable failures. */
async function businessErrorsFinal<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof AppError && err.status < 500) throw ApplicationFailure.nonRetryable(err.message, err.code);
    throw err;
  }
}

export function createAgentActivities({ agents, db }: { agents: AgentService; db: Db }) {
  return {
    getContainerSpec(agentId: string, purpose?: SpecPurpose): Promise<ContainerSpec> {
      return businessErrorsFinal(() => agents.containerSpec(agentId, purpose));
    },

    recordAgentState(
      agentId: string,
      patch: Parameters<AgentService['recordState']>[1],
    ): Promise<void> {
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
      return agents.instanceId();
    },

    async listDockerHosts(): Promise<string[]> {
      const hosts = await db.dockerHost.findMany({ where: { status: { not: 'disabled' } }, select: { id: true } });
      return hosts.map((h) => h.id);
    },

    async recordFleetEvent(event: { type: string; agentId?: string; payload: Record<string, unknown> }): Promise<void> {
      await db.fleetEvent.create({ data: { type: event.type, agentId: event.agentId ?? null, payload: event.payload as object } });
    },
  };
}
