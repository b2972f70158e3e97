import type { OwnerKind } from '../contracts/agent.contract.ts';
import type { Keyring } from '../crypto.ts';
import { asSystem, asUser, type Agent, type Db, type Tx } from '../db.ts';
import { ValidationError } from '../errors.ts';
import { buildOpenClawConfig, workspaceFiles, type OpenClawConfig } from './openclaw-config.service.ts';
import type { ProviderModel } from './providers.service.ts';

export interface AgentConfigInput {
  primaryModel: string | null;
  fallbackModels: string[];
  personality: string | null;
  providerId: string | null;
}

/**
 * Whose config row an agent reads. A federated agent's is its own (keyed by
 * the agent's id): one peer runs many agents, each with the model its hub asked for.
 */
export const configOwnerOf = (agent: Pick<Agent, 'ownerKind' | 'ownerId' | 'id'>): string => (agent.ownerKind === 'federated' ? agent.id : agent.ownerId);

export function createAgentConfigService({ db, keyring }: { db: Db; keyring: Keyring }) {
  return {
    async get(ownerKind: OwnerKind, ownerId: string): Promise<AgentConfigInput> {
      const find = (tx: Tx) => tx.agentConfig.findUnique({ where: { ownerKind_ownerId: { ownerKind, ownerId } } });
      const c = ownerKind === 'user' ? await asUser(db, ownerId, find) : await asSystem(db, find);
      return {
        primaryModel: c?.primaryModel ?? null,
        fallbackModels: c?.fallbackModels ?? [],
        personality: c?.personality ?? null,
        providerId: c?.providerId ?? null,
      };
    },

    async put(userId: string, input: AgentConfigInput): Promise<AgentConfigInput> {
      if (input.providerId) {
        // Only the caller's own providers: another user's id reads as unknown.
        const p = await asUser(db, userId, (tx) => tx.llmProvider.findFirst({ where: { id: input.providerId!, userId } }));
        if (!p) throw new ValidationError('providerId does not name one of your providers', { field: 'providerId' });
      }
      return this.putFor('user', userId, input);
    },

    async putFor(ownerKind: OwnerKind, ownerId: string, input: AgentConfigInput): Promise<AgentConfigInput> {
      const upsert = (tx: Tx) =>
        tx.agentConfig.upsert({
          where: { ownerKind_ownerId: { ownerKind, ownerId } },
          create: { ownerKind, ownerId, ...input },
          update: input,
        });
      await (ownerKind === 'user' ? asUser(db, ownerId, upsert) : asSystem(db, upsert));
      return this.get(ownerKind, ownerId);
    },

    /**
     * What the internal config endpoint hands an agent at boot: OpenClaw's own
     * openclaw.json (core/services/openclaw-config.service.ts). The only place
     * provider keys are decrypted. `agent` is the row as the bootstrap exchange
     * left it, so gateway.auth.token is the token minted for this start.
     */
    async runtimeConfig(agent: Agent): Promise<OpenClawConfig> {
      const ownerKind = agent.ownerKind as OwnerKind;
      // One transaction for both reads: this is on every start's path.
      const read = async (tx: Tx) => {
        const c = await tx.agentConfig.findUnique({ where: { ownerKind_ownerId: { ownerKind, ownerId: configOwnerOf(agent) } } });
        // A user's agent sees that user's providers, a workspace's agent the
        // workspace's; a system or federated agent only the admin
        // provider it was given.
        const providers =
          ownerKind === 'user'
            ? await tx.llmProvider.findMany({ where: { userId: agent.ownerId, isActive: true }, orderBy: { createdAt: 'asc' } })
            : ownerKind === 'workspace'
              ? await tx.llmProvider.findMany({ where: { workspaceId: agent.ownerId, isActive: true }, orderBy: { createdAt: 'asc' } })
              : c?.providerId
                ? await tx.llmProvider.findMany({ where: { id: c.providerId, isActive: true } })
                : [];
        return { cfg: { primaryModel: c?.primaryModel ?? null, fallbackModels: c?.fallbackModels ?? [], providerId: c?.providerId ?? null }, providers };
      };
      const { cfg, providers } = ownerKind === 'user' ? await asUser(db, agent.ownerId, read) : await asSystem(db, read);
      return buildOpenClawConfig({
        gatewayToken: keyring.decrypt(agent.gatewayToken),
        providers: providers.map((p) => ({
          name: p.name,
          type: p.type,
          baseUrl: p.baseUrl,
          apiKey: p.apiKey ? keyring.decrypt(p.apiKey) : null,
          apiType: p.apiType,
          models: (p.models ?? []) as unknown as ProviderModel[],
        })),
        primaryModel: cfg.primaryModel,
        fallbackModels: cfg.fallbackModels,
        preferredProvider: providers.find((p) => p.id === cfg.providerId)?.name ?? null,
      });
    },

    /** Workspace files the agent writes before its gateway starts (the personality as SOUL.md). */
    async workspace(agent: Agent): Promise<{ files: Record<string, string | null> }> {
      const cfg = await this.get(agent.ownerKind as OwnerKind, configOwnerOf(agent));
      return { files: workspaceFiles(cfg.personality) };
    },
  };
}

export type AgentConfigService = ReturnType<typeof createAgentConfigService>;
