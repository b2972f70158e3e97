import type { Keyring } from '../crypto.ts';
import { asUser, type Db, type LlmProvider } from '../db.ts';
import { ConflictError, NotFoundError, ValidationError } from '../errors.ts';

export const PROVIDER_TYPES = ['openai', 'anthropic', 'ollama', 'zai', 'custom'] as const;
export type ProviderType = (typeof PROVIDER_TYPES)[number];

export interface ProviderModel {
  id: string;
  name?: string;
  contextWindow?: number;
  maxTokens?: number;
}

export interface ProviderInput {
  name: string;
  displayName: string;
  type: ProviderType;
  baseUrl?: string;
  apiKey?: string;
  apiType?: string;
  models?: ProviderModel[];
}

const DEFAULT_BASE_URL: Record<ProviderType, string | null> = {
  openai: 'https://api.openai.com/v1',
  anthropic: 'https://api.anthropic.com/v1',
  ollama: 'http://host.docker.internal:11434/v1',
  zai: 'https://api.z.ai/api/paas/v4',
  custom: null,
};

const defaultApiType = (type: ProviderType) => (type === 'anthropic' ? 'anthropic-messages' : 'openai-completions');

export function toPublicProvider(p: LlmProvider, keyring: Keyring) {
  let apiKeyLast4: string | null = null;
  if (p.apiKey) {
    // Only the last four characters ever leave the server, for recognition.
    try {
      apiKeyLast4 = keyring.decrypt(p.apiKey).slice(-4);
    } catch {
      apiKeyLast4 = null;
    }
  }
  return {
    id: p.id,
    name: p.name,
    displayName: p.displayName,
    type: p.type as ProviderType,
    baseUrl: p.baseUrl,
    apiType: p.apiType,
    models: (p.models ?? []) as unknown as ProviderModel[],
    isActive: p.isActive,
    hasApiKey: Boolean(p.apiKey),
    apiKeyLast4,
    createdAt: p.createdAt.toISOString(),
    updatedAt: p.updatedAt.toISOString(),
  };
}

/** The host-side view of a base URL: agents' host.docker.internal is this machine. */
export function hostSideUrl(baseUrl: string): string {
  return baseUrl.replace('://host.docker.internal', '://127.0.0.1');
}

export function createProviderService({ db, keyring }: { db: Db; keyring: Keyring }) {
  async function owned(userId: string, id: string): Promise<LlmProvider> {
    // Scoped by owner (and by row-level security): another user's provider reads as missing.
    const p = await asUser(db, userId, (tx) => tx.llmProvider.findFirst({ where: { id, userId } }));
    if (!p) throw new NotFoundError('Provider');
    return p;
  }

  function resolveBaseUrl(type: ProviderType, baseUrl: string | undefined | null): string {
    const url = baseUrl ?? DEFAULT_BASE_URL[type];
    if (!url) throw new ValidationError('baseUrl is required for a custom provider', { field: 'baseUrl' });
    return url.replace(/\/+$/, '');
  }

  return {
    owned,

    findByName(userId: string, name: string): Promise<LlmProvider | null> {
      return asUser(db, userId, (tx) => tx.llmProvider.findFirst({ where: { userId, name } }));
    },

    list(userId: string) {
      return asUser(db, userId, (tx) => tx.llmProvider.findMany({ where: { userId }, orderBy: { createdAt: 'asc' } }));
    },

    async create(userId: string, input: ProviderInput): Promise<LlmProvider> {
      try {
        return await asUser(db, userId, (tx) => tx.llmProvider.create({
          data: {
            userId,
            name: input.name,
            displayName: input.displayName,
            type: input.type,
            baseUrl: resolveBaseUrl(input.type, input.baseUrl),
            apiKey: input.apiKey ? keyring.encrypt(input.apiKey) : null,
            apiType: input.apiType ?? defaultApiType(input.type),
            models: (input.models ?? []) as object[],
          },
        }));
      } catch (err) {
        if ((err as { code?: string }).code === 'P2002') {
          throw new ConflictError(`A provider named "${input.name}" already exists`, 'duplicate_name');
        }
        throw err;
      }
    },

    async update(userId: string, id: string, patch: Partial<ProviderInput>): Promise<LlmProvider> {
      const current = await owned(userId, id);
      const type = (patch.type ?? current.type) as ProviderType;
      const baseUrl = patch.baseUrl !== undefined || patch.type ? resolveBaseUrl(type, patch.baseUrl ?? current.baseUrl) : undefined;
      // A key belongs to the endpoint it was given for: re-pointing the
      // provider (another URL or type) drops it, so `test` can never carry it
      // somewhere new. The user enters it again with the new endpoint.
      const repointed = (baseUrl !== undefined && baseUrl !== current.baseUrl) || (patch.type !== undefined && patch.type !== current.type);
      const apiKey = patch.apiKey !== undefined ? keyring.encrypt(patch.apiKey) : repointed ? null : undefined;
      try {
        return await asUser(db, userId, (tx) => tx.llmProvider.update({
          where: { id: current.id },
          data: {
            name: patch.name,
            displayName: patch.displayName,
            type: patch.type,
            baseUrl,
            apiKey,
            apiType: patch.apiType,
            models: patch.models as object[] | undefined,
          },
        }));
      } catch (err) {
        if ((err as { code?: string }).code === 'P2002') {
          throw new ConflictError(`A provider named "${patch.name}" already exists`, 'duplicate_name');
        }
        throw err;
      }
    },

    async remove(userId: string, id: string): Promise<void> {
      await asUser(db, userId, async (tx) => {
        const p = await tx.llmProvider.findFirst({ where: { id, userId } });
        if (!p) throw new NotFoundError('Provider');
        const inUse = await tx.agentConfig.findFirst({ where: { ownerKind: 'user', ownerId: userId, providerId: p.id } });
        if (inUse) throw new ConflictError('The agent config uses this provider; point it elsewhere first', 'provider_in_use');
        await tx.llmProvider.delete({ where: { id: p.id } });
      });
    },

    /** Calls the provider's model list with the stored key. */
    async test(userId: string, id: string, timeoutMs = 10_000): Promise<{ ok: boolean; latencyMs: number; error?: string }> {
      const p = await owned(userId, id);
      const started = performance.now();
      const headers: Record<string, string> = {};
      if (p.apiKey) {
        const key = keyring.decrypt(p.apiKey);
        if (p.type === 'anthropic') {
          headers['x-api-key'] = key;
          headers['anthropic-version'] = '2023-06-01';
        } else headers.authorization = `Bearer ${key}`;
      }
      try {
        const res = await fetch(`${hostSideUrl(p.baseUrl ?? '')}/models`, { headers, signal: AbortSignal.timeout(timeoutMs) });
        const latencyMs = Math.round(performance.now() - started);
        await res.body?.cancel();
        return res.ok ? { ok: true, latencyMs } : { ok: false, latencyMs, error: `provider answered HTTP ${res.status}` };
      } catch (err) {
        const latencyMs = Math.round(performance.now() - started);
        const e = err as Error & { cause?: { code?: string } };
        return { ok: false, latencyMs, error: e.name === 'TimeoutError' ? 'timed out' : (e.cause?.code ?? e.message) };
      }
    },
  };
}

export type ProviderService = ReturnType<typeof createProviderService>;
