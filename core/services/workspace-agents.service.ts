import { atLeast, type WorkspaceRole } from '../contracts/workspace.contract.ts';
import type { Keyring } from '../crypto.ts';
import { asUser, type Agent, type Db, type LlmProvider } from '../db.ts';
import { ConflictError, ForbiddenError, GoneError, NotFoundError, ValidationError } from '../errors.ts';
import type { AgentConfigInput, AgentConfigService } from './agent-config.service.ts';
import type { AgentService } from './agents.service.ts';
import type { AuditService } from './audit.service.ts';
import { defaultApiType, resolveBaseUrl, toPublicProvider, type ProviderInput, type ProviderType } from './providers.service.ts';
import type { WorkspaceService } from './workspaces.service.ts';

// A workspace's shared agent: its providers and config (owners and admins
// write them; members and viewers read the config), and who may do what with
// the agent itself. Provider keys are encrypted at rest and never returned to
// anyone, owners included: not even their last four characters.

/** A workspace provider as every member may see it. */
export function toWorkspaceProvider(p: LlmProvider, keyring: Keyring) {
  return { ...toPublicProvider(p, keyring), apiKeyLast4: null };
}

export function createWorkspaceAgentService(deps: {
  db: Db;
  keyring: Keyring;
  workspaces: WorkspaceService;
  agents: AgentService;
  agentConfigs: AgentConfigService;
  audit: AuditService;
}) {
  const { db, keyring, workspaces, agents, agentConfigs, audit } = deps;

  async function ownedProvider(userId: string, workspaceId: string, id: string): Promise<LlmProvider> {
    const p = await asUser(db, userId, (tx) => tx.llmProvider.findFirst({ where: { id, workspaceId } }));
    if (!p) throw new NotFoundError('Provider');
    return p;
  }

  const duplicate = (err: unknown, name: string | undefined) => {
    if ((err as { code?: string }).code === 'P2002') return new ConflictError(`A provider named "${name}" already exists in this workspace`, 'duplicate_name');
    return err;
  };

  return {
    async listProviders(userId: string, slug: string) {
      const a = await workspaces.access(userId, slug, 'admin');
      const rows = await asUser(db, userId, (tx) => tx.llmProvider.findMany({ where: { workspaceId: a.workspace.id }, orderBy: { createdAt: 'asc' } }));
      return rows.map((p) => toWorkspaceProvider(p, keyring));
    },

    async createProvider(userId: string, slug: string, input: ProviderInput) {
      const a = await workspaces.access(userId, slug, 'admin');
      try {
        const p = await asUser(db, userId, (tx) => tx.llmProvider.create({
          data: {
            workspaceId: a.workspace.id,
            name: input.name,
            displayName: input.displayName,
            type: input.type,
            baseUrl: resolveBaseUrl(input.type, input.baseUrl),
            apiKey: input.apiKey ? keyring.encrypt(input.apiKey) : null,
            apiType: input.apiType ?? defaultApiType(input.type),
            models: (input.models ?? []) as object[],
          },
        }));
        await audit.record({ actorId: userId, workspaceId: a.workspace.id, action: 'workspace.provider.create', target: `provider:${p.id}`, after: { name: p.name, type: p.type, baseUrl: p.baseUrl } });
        return { provider: toWorkspaceProvider(p, keyring), workspaceId: a.workspace.id };
      } catch (err) {
        throw duplicate(err, input.name);
      }
    },

    async updateProvider(userId: string, slug: string, id: string, patch: Partial<ProviderInput>) {
      const a = await workspaces.access(userId, slug, 'admin');
      const current = await ownedProvider(userId, a.workspace.id, id);
      const type = (patch.type ?? current.type) as ProviderType;
      const baseUrl = patch.baseUrl !== undefined || patch.type ? resolveBaseUrl(type, patch.baseUrl ?? current.baseUrl) : undefined;
      // As for personal providers: a key belongs to the endpoint it was given for.
      const repointed = (baseUrl !== undefined && baseUrl !== current.baseUrl) || (patch.type !== undefined && patch.type !== current.type);
      const apiKey = patch.apiKey !== undefined ? keyring.encrypt(patch.apiKey) : repointed ? null : undefined;
      try {
        const p = await asUser(db, userId, (tx) => tx.llmProvider.update({
          where: { id: current.id },
          data: { name: patch.name, displayName: patch.displayName, type: patch.type, baseUrl, apiKey, apiType: patch.apiType, models: patch.models as object[] | undefined },
        }));
        await audit.record({ actorId: userId, workspaceId: a.workspace.id, action: 'workspace.provider.update', target: `provider:${p.id}`, after: { name: p.name, type: p.type, baseUrl: p.baseUrl, keyChanged: patch.apiKey !== undefined } });
        return { provider: toWorkspaceProvider(p, keyring), workspaceId: a.workspace.id };
      } catch (err) {
        throw duplicate(err, patch.name);
      }
    },

    async removeProvider(userId: string, slug: string, id: string) {
      const a = await workspaces.access(userId, slug, 'admin');
      await asUser(db, userId, async (tx) => {
        const p = await tx.llmProvider.findFirst({ where: { id, workspaceId: a.workspace.id } });
        if (!p) throw new NotFoundError('Provider');
        const inUse = await tx.agentConfig.findFirst({ where: { ownerKind: 'workspace', ownerId: a.workspace.id, providerId: p.id } });
        if (inUse) throw new ConflictError('The workspace agent config uses this provider; point it elsewhere first', 'provider_in_use');
        await tx.llmProvider.delete({ where: { id: p.id } });
      });
      await audit.record({ actorId: userId, workspaceId: a.workspace.id, action: 'workspace.provider.delete', target: `provider:${id}` });
      return { workspaceId: a.workspace.id };
    },

    /** Every member reads the config (viewers included); it carries no key material. */
    async getConfig(userId: string, slug: string): Promise<AgentConfigInput> {
      const a = await workspaces.access(userId, slug);
      return agentConfigs.get('workspace', a.workspace.id);
    },

    async putConfig(userId: string, slug: string, input: AgentConfigInput) {
      const a = await workspaces.access(userId, slug, 'admin');
      if (input.providerId) {
        const p = await asUser(db, userId, (tx) => tx.llmProvider.findFirst({ where: { id: input.providerId!, workspaceId: a.workspace.id } }));
        if (!p) throw new ValidationError("providerId does not name one of this workspace's providers", { field: 'providerId' });
      }
      const before = await agentConfigs.get('workspace', a.workspace.id);
      const after = await agentConfigs.putFor('workspace', a.workspace.id, input);
      await audit.record({ actorId: userId, workspaceId: a.workspace.id, action: 'workspace.agent_config', target: `workspace:${a.workspace.id}`, before, after });
      return { config: after, workspaceId: a.workspace.id };
    },

    /** The workspace's agent row (null until first started) and the caller's role, checked against `need`. */
    async agentOf(userId: string, slug: string, need: WorkspaceRole = 'viewer') {
      const a = await workspaces.access(userId, slug, need);
      return { access: a, agent: await agents.findOwned('workspace', a.workspace.id) };
    },

    /**
     * The agent a chat names by id, and the speaker's standing with it: your
     * own agent (role null), or a workspace agent of a workspace you belong to
     * with at least `need`. Anything else — another user's agent, a system
     * agent, a workspace you are not in — reads as missing.
     */
    async forSpeaker(userId: string, agentId: string, need: WorkspaceRole): Promise<{ agent: Agent; role: WorkspaceRole | null }> {
      const agent = await agents.get(agentId).catch(() => null);
      if (agent?.ownerKind === 'user' && agent.ownerId === userId) return { agent, role: null };
      if (agent?.ownerKind !== 'workspace') throw new NotFoundError('Agent');
      const m = await workspaces.roleIn(userId, agent.ownerId);
      if (!m) throw new NotFoundError('Agent');
      if (m.archived) throw new GoneError('This workspace is archived', 'workspace_archived');
      if (!atLeast(m.role, need)) throw new ForbiddenError(`Chatting with the workspace agent needs the ${need} role; you are ${m.role}`, 'workspace_role_required');
      return { agent, role: m.role };
    },
  };
}

export type WorkspaceAgentService = ReturnType<typeof createWorkspaceAgentService>;
