import { ApplicationFailure } from '@temporalio/common';
import type { Keyring } from '../core/crypto.ts';
import { asUser, type Db } from '../core/db.ts';
import { AppError } from '../core/errors.ts';
import {
  ONBOARDING_COMPLETED_KEY,
  type BreakglassInput,
  type OnboardingState,
  type ProviderStepInput,
  type SystemAgentSpec,
} from '../core/contracts/onboarding.contract.ts';
import type { AgentService } from '../core/services/agents.service.ts';
import type { AgentConfigService } from '../core/services/agent-config.service.ts';
import type { ProviderInput, ProviderService } from '../core/services/providers.service.ts';
import type { UserService } from '../core/services/users.service.ts';
import { discoverOidcIssuer, OIDC_KEYS } from '../core/services/oidc-settings.service.ts';

// The side effects of the first-boot wizard. Each is idempotent: Temporal may
// run it again, and the user may repeat a step.

const final = (err: unknown): never => {
  if (err instanceof AppError && err.status < 500) throw ApplicationFailure.nonRetryable(err.message, err.code);
  throw err;
};

export function createOnboardingActivities(deps: {
  db: Db;
  keyring: Keyring;
  users: UserService;
  providers: ProviderService;
  agents: AgentService;
  agentConfigs: AgentConfigService;
}) {
  const { db, keyring } = deps;
  return {
    /** What already exists (a breakglass made with the CLI counts). */
    async currentSetup(): Promise<Pick<OnboardingState, 'adminId'> & { oidc: boolean }> {
      const admin = await db.user.findFirst({ where: { authSource: 'breakglass', status: 'active' }, orderBy: { createdAt: 'asc' } });
      const oidc = await db.systemConfig.findUnique({ where: { key: OIDC_KEYS.issuer } });
      return { adminId: admin?.id ?? null, oidc: Boolean(oidc) };
    },

    async createBreakglass(input: BreakglassInput): Promise<{ userId: string }> {
      const existing = await db.user.findFirst({ where: { authSource: 'breakglass' } });
      if (existing) {
        // A retry of our own create is success; anybody else's is a conflict.
        if (existing.username === input.username.toLowerCase()) return { userId: existing.id };
        throw ApplicationFailure.nonRetryable('A breakglass admin already exists', 'breakglass_exists');
      }
      const user = await deps.users.create({ username: input.username, passwordHash: input.passwordHash, role: 'admin', authSource: 'breakglass' }).catch(final);
      return { userId: user.id };
    },

    async saveOidc(input: { issuerUrl: string; clientId: string; clientSecretEnc: string }): Promise<void> {
      await discoverOidcIssuer(input.issuerUrl).catch(final);
      await db.$transaction([
        db.systemConfig.upsert({ where: { key: OIDC_KEYS.issuer }, create: { key: OIDC_KEYS.issuer, value: input.issuerUrl }, update: { value: input.issuerUrl } }),
        db.systemConfig.upsert({ where: { key: OIDC_KEYS.clientId }, create: { key: OIDC_KEYS.clientId, value: input.clientId }, update: { value: input.clientId } }),
        db.systemConfig.upsert({
          where: { key: OIDC_KEYS.clientSecret },
          create: { key: OIDC_KEYS.clientSecret, value: input.clientSecretEnc, encrypted: true },
          update: { value: input.clientSecretEnc, encrypted: true },
        }),
      ]);
    },

    /** Creates (once, by name) and tests the admin's first provider; a failing test removes it again. */
    async createFirstProvider(adminId: string, input: NonNullable<ProviderStepInput['provider']>): Promise<{ providerId: string }> {
      const existing = await asUser(db, adminId, (tx) => tx.llmProvider.findFirst({ where: { userId: adminId, name: input.name } }));
      if (existing) return { providerId: existing.id };
      const { apiKeyEnc, ...rest } = input;
      const provider = await deps.providers
        .create(adminId, { ...rest, apiKey: apiKeyEnc ? keyring.decrypt(apiKeyEnc) : undefined } as ProviderInput)
        .catch(final);
      // A target the egress rules refuse fails the step like a dead provider (and is removed again).
      const test = await deps.providers.test(adminId, provider.id).catch((err) => {
        if (err instanceof AppError && err.status < 500) return { ok: false, latencyMs: 0, error: err.message };
        throw err;
      });
      if (!test.ok) {
        await asUser(db, adminId, (tx) => tx.llmProvider.delete({ where: { id: provider.id } }));
        throw ApplicationFailure.nonRetryable(`The provider did not answer: ${test.error}`, 'provider_test_failed');
      }
      return { providerId: provider.id };
    },

    async createSystemAgents(adminId: string, specs: SystemAgentSpec[]): Promise<{ agentIds: string[] }> {
      const agentIds: string[] = [];
      for (const spec of specs) {
        const provider = await asUser(db, adminId, (tx) => tx.llmProvider.findFirst({ where: { id: spec.providerId, userId: adminId } }));
        if (!provider) throw ApplicationFailure.nonRetryable(`providerId ${spec.providerId} is not one of the admin's providers`, 'invalid_provider');
        const agent = await deps.agents.getOrCreate('system', spec.name);
        await deps.agentConfigs.putFor('system', spec.name, {
          primaryModel: spec.primaryModel,
          fallbackModels: [],
          personality: spec.role,
          providerId: spec.providerId,
        });
        agentIds.push(agent.id);
      }
      return { agentIds };
    },

    async completeOnboarding(steps: OnboardingState['steps']): Promise<void> {
      await db.systemConfig.upsert({
        where: { key: ONBOARDING_COMPLETED_KEY },
        create: { key: ONBOARDING_COMPLETED_KEY, value: JSON.stringify(steps) },
        update: { value: JSON.stringify(steps) },
      });
    },
  };
}
