import { asSystem, type Agent, type Db } from '../db.ts';
import { ConflictError, NotFoundError, ValidationError } from '../errors.ts';
import type { AgentConfigInput, AgentConfigService } from './agent-config.service.ts';
import type { AgentService } from './agents.service.ts';
import type { ProviderService } from './providers.service.ts';

// System agents after onboarding (the wizard's step makes them the same way,
// in activities/onboarding.activities.ts): owned by the instance, always on,
// named, with a role (their personality) and a provider of the admin who
// made them. Removing one is the caller's two steps: retire its lifecycle
// (agent-control), then remove() the rows here.

export interface SystemAgentSpec {
  name: string;
  role: string;
  providerId: string;
  primaryModel: string;
}

export function createSystemAgentService(deps: { db: Db; agents: AgentService; agentConfigs: AgentConfigService; providers: Pick<ProviderService, 'owned'> }) {
  return {
    async list(): Promise<Array<{ agent: Agent; config: AgentConfigInput }>> {
      const rows = await deps.agents.listSystemAgents();
      return Promise.all(rows.map(async (agent) => ({ agent, config: await deps.agentConfigs.get('system', agent.ownerId) })));
    },

    /** A system agent by id; any other agent reads as missing. */
    async get(id: string): Promise<Agent> {
      const agent = await deps.agents.get(id).catch(() => null);
      if (!agent || agent.ownerKind !== 'system') throw new NotFoundError('System agent');
      return agent;
    },

    async create(adminId: string, spec: SystemAgentSpec): Promise<Agent> {
      // Another user's provider id reads as unknown (owned() is scoped to the admin).
      await deps.providers.owned(adminId, spec.providerId).catch((err) => {
        if (err instanceof NotFoundError) throw new ValidationError(`providerId ${spec.providerId} is not one of your providers`, { field: 'providerId' }, 'invalid_provider');
        throw err;
      });
      if (await deps.agents.findOwned('system', spec.name)) throw new ConflictError(`There is a system agent named ${spec.name} already`, 'system_agent_exists');
      const agent = await deps.agents.getOrCreate('system', spec.name);
      await deps.agentConfigs.putFor('system', spec.name, { primaryModel: spec.primaryModel, fallbackModels: [], personality: spec.role, providerId: spec.providerId });
      return agent;
    },

    /** The agent's row and config go (its lifecycle retired first); its volume stays for the operator. */
    async remove(agent: Agent): Promise<void> {
      await asSystem(deps.db, async (tx) => {
        await tx.agent.delete({ where: { id: agent.id } });
        await tx.agentConfig.deleteMany({ where: { ownerKind: 'system', ownerId: agent.ownerId } });
      });
    },
  };
}

export type SystemAgentService = ReturnType<typeof createSystemAgentService>;
