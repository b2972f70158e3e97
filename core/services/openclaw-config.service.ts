import { AGENT_PORT } from '../contracts/agent.contract.ts';
import type { ProviderModel, ProviderType } from './providers.service.ts';

// The openclaw.json an agent container runs with, built from Hangar's rows.
// OpenClaw validates its config strictly and refuses to start on an unknown
// key, so this emits only keys from OpenClaw's configuration reference
// (docs/gateway/configuration-reference.md in the openclaw package); the
// reference agent reads the same shape. Pure: no I/O, so a unit test pins it.

/** One of the owner's providers, key already decrypted. */
export interface OpenClawProviderInput {
  name: string;
  type: ProviderType | string;
  baseUrl: string | null;
  apiKey: string | null;
  apiType: string | null;
  models: ProviderModel[];
}

export interface OpenClawConfigInput {
  gatewayToken: string;
  providers: OpenClawProviderInput[];
  /** `<provider>/<model>`; null: the preferred provider's first model. */
  primaryModel: string | null;
  fallbackModels: string[];
  /** Provider whose first model is the default when primaryModel is null. */
  preferredProvider?: string | null;
}

/** Request adapters OpenClaw knows (models.providers.*.api); anything else falls back by type. */
const OPENCLAW_APIS = new Set([
  'openai-completions',
  'openai-responses',
  'anthropic-messages',
  'google-generative-ai',
  'ollama',
  'azure-openai-responses',
]);

/** Hangar's provider types to OpenClaw adapters: only Anthropic speaks its own protocol. */
export function openClawApi(type: string, apiType: string | null): string {
  if (apiType && OPENCLAW_APIS.has(apiType)) return apiType;
  return type === 'anthropic' ? 'anthropic-messages' : 'openai-completions';
}

/**
 * Bundled plugins the agents load. Hangar's agents chat through the
 * OpenAI-compatible endpoint and keep memory; channels, browser, canvas,
 * voice and device plugins are left off (they cost memory and start time and
 * nothing of Hangar's uses them). The request adapters are core, not plugins.
 */
export const OPENCLAW_PLUGINS = ['memory-core'] as const;

/** Log file on the container's tmpfs, capped: docker logs keeps the console copy. */
export const OPENCLAW_LOG_FILE = '/tmp/openclaw/openclaw.log';
const OPENCLAW_LOG_MAX_BYTES = 4 * 1024 * 1024;

export function buildOpenClawConfig(input: OpenClawConfigInput) {
  const providers = input.providers.filter((p) => p.baseUrl);
  const preferred = providers.find((p) => p.name === input.preferredProvider) ?? providers[0];
  const firstModel = preferred?.models?.[0]?.id;
  const primary = input.primaryModel ?? (preferred && firstModel ? `${preferred.name}/${firstModel}` : null);
  return {
    gateway: {
      mode: 'local',
      port: AGENT_PORT,
      // All interfaces inside the container: Docker publishes the port on the host's loopback only.
      bind: 'lan',
      auth: { mode: 'token', token: input.gatewayToken },
      http: { endpoints: { chatCompletions: { enabled: true } } },
    },
    agents: {
      defaults: {
        // No model at all is allowed: the gateway starts and says so when asked to chat.
        ...(primary ? { model: { primary, fallbacks: input.fallbackModels } } : {}),
      },
    },
    models: {
      // Only the owner's providers: no discovered or bundled catalogs.
      mode: 'replace',
      providers: Object.fromEntries(
        providers.map((p) => [
          p.name,
          {
            baseUrl: p.baseUrl,
            ...(p.apiKey ? { apiKey: p.apiKey } : {}),
            api: openClawApi(p.type, p.apiType),
            models: (p.models ?? []).map((m) => ({
              id: m.id,
              name: m.name ?? m.id,
              ...(m.contextWindow ? { contextWindow: m.contextWindow } : {}),
              ...(m.maxTokens ? { maxTokens: m.maxTokens } : {}),
            })),
          },
        ]),
      ),
    },
    plugins: { allow: [...OPENCLAW_PLUGINS] },
    logging: { file: OPENCLAW_LOG_FILE, maxFileBytes: OPENCLAW_LOG_MAX_BYTES },
  };
}

export type OpenClawConfig = ReturnType<typeof buildOpenClawConfig>;

/** Marks the workspace files Hangar owns, so the entrypoint only ever removes its own. */
export const HANGAR_MANAGED_MARKER = '<!-- managed by Hangar: edit the personality in Hangar, not here -->';

/**
 * Workspace files the entrypoint writes before the gateway starts. OpenClaw
 * reads the persona from SOUL.md in the agent's workspace (docs/concepts/soul.md);
 * null means "Hangar has none": the entrypoint removes a SOUL.md it wrote
 * earlier and leaves OpenClaw's own alone.
 */
export function workspaceFiles(personality: string | null): Record<string, string | null> {
  const text = personality?.trim();
  return { 'SOUL.md': text ? `${HANGAR_MANAGED_MARKER}\n\n${text}\n` : null };
}
