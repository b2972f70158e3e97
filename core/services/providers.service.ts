import { lookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import net, { type LookupFunction } from 'node:net';
import os from 'node:os';
import type { Keyring } from '../crypto.ts';
import { asUser, type Db, type LlmProvider } from '../db.ts';
import { isTargetAllowed } from '../egress-policy.ts';
import { ConflictError, NotFoundError, ValidationError } from '../errors.ts';
import type { EgressSettingsService } from './egress-settings.service.ts';

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

export const defaultApiType = (type: ProviderType) => (type === 'anthropic' ? 'anthropic-messages' : 'openai-completions');

/** A provider's base URL: the one given, else the type's default (custom providers must give one). */
export function resolveBaseUrl(type: ProviderType, baseUrl: string | undefined | null): string {
  const url = baseUrl ?? DEFAULT_BASE_URL[type];
  if (!url) throw new ValidationError('baseUrl is required for a custom provider', { field: 'baseUrl' });
  return url.replace(/\/+$/, '');
}

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

/** Every address of this host's interfaces: a `host:<port>` allowlist entry opens these. */
function localAddresses(): string[] {
  return Object.values(os.networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address.replace(/%.*$/, '')));
}

/** A lookup that answers only with addresses checked beforehand: no second resolution between check and connect (DNS rebinding). */
function pinnedLookup(addresses: Array<{ address: string; family: number }>): LookupFunction {
  return ((_host: string, options: { all?: boolean }, cb: (...args: unknown[]) => void) => {
    if (options?.all) cb(null, addresses);
    else cb(null, addresses[0]!.address, addresses[0]!.family);
  }) as unknown as LookupFunction;
}

/** One GET without following redirects; resolves with the status (the body is discarded). */
function getStatus(url: URL, headers: Record<string, string>, lookupFn: LookupFunction, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? https : http).request(url, {
      method: 'GET',
      headers: { ...headers, accept: 'application/json' },
      lookup: lookupFn,
      signal: AbortSignal.timeout(timeoutMs),
    }, (res) => {
      resolve(res.statusCode ?? 0);
      res.destroy();
    });
    req.once('error', reject);
    req.end();
  });
}

export function createProviderService({ db, keyring, egress }: { db: Db; keyring: Keyring; egress: Pick<EgressSettingsService, 'entries'> }) {
  async function owned(userId: string, id: string): Promise<LlmProvider> {
    // Scoped by owner (and by row-level security): another user's provider reads as missing.
    const p = await asUser(db, userId, (tx) => tx.llmProvider.findFirst({ where: { id, userId } }));
    if (!p) throw new NotFoundError('Provider');
    return p;
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
      const url = new URL(`${hostSideUrl(p.baseUrl ?? '')}/models`);
      const host = url.hostname.replace(/^\[|\]$/g, '');
      const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
      const failed = (error: string) => ({ ok: false, latencyMs: Math.round(performance.now() - started), error });
      let addresses: Array<{ address: string; family: number }>;
      try {
        addresses = net.isIP(host) ? [{ address: host, family: net.isIP(host) }] : await lookup(host, { all: true });
      } catch (err) {
        return failed(`cannot resolve ${host} (${(err as NodeJS.ErrnoException).code ?? 'lookup failed'})`);
      }
      // Hangar runs on the host, outside the agents' bridge policy: the same refusals, checked here.
      const allow = await egress.entries();
      const local = localAddresses();
      if (addresses.length === 0 || addresses.some((a) => !isTargetAllowed(a.address, port, allow, local))) {
        throw new ValidationError(
          `Hangar does not call ${host}:${port}: it is (or resolves to) a private, loopback or link-local address. An admin can allowlist it under agent egress (host:${port} for a port on this host, <CIDR>:${port} for a LAN server).`,
          { host, port },
          'egress_refused',
        );
      }
      try {
        const status = await getStatus(url, headers, pinnedLookup(addresses), timeoutMs);
        const latencyMs = Math.round(performance.now() - started);
        if (status >= 300 && status < 400) return { ok: false, latencyMs, error: `provider answered a redirect (HTTP ${status}); redirects are not followed` };
        return status >= 200 && status < 300 ? { ok: true, latencyMs } : { ok: false, latencyMs, error: `provider answered HTTP ${status}` };
      } catch (err) {
        const e = err as Error & { code?: string; cause?: { code?: string } };
        return failed(e.name === 'TimeoutError' || e.name === 'AbortError' ? 'timed out' : (e.code ?? e.cause?.code ?? e.message));
      }
    },
  };
}

export type ProviderService = ReturnType<typeof createProviderService>;
