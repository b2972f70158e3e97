import type { OnboardingState, ProviderStepInput, SystemAgentSpec, BreakglassInput } from '../core/contracts/onboarding.contract.ts';
import { businessErrorsFinal } from '../core/control/failures.ts';
import type { Keyring } from '../core/crypto.ts';
import { NotFoundError, ValidationError } from '../core/errors.ts';
import type { AgentService } from '../core/services/agents.service.ts';
import type { AgentConfigService } from '../core/services/agent-config.service.ts';
import type { BreakglassService } from '../core/services/breakglass.service.ts';
import { discoverOidcIssuer } from '../core/services/oidc-discovery.service.ts';
import type { ProviderInput, ProviderService } from '../core/services/providers.service.ts';
import type { SettingsService } from '../core/services/settings.service.ts';
import type { SetupCodeService } from '../core/services/setup-code.service.ts';

// The side effects of the first-boot wizard. Each is idempotent: Temporal may
// run it again, and the user may repeat a step.

export function createOnboardingActivities(deps: {
  keyring: Keyring;
  settings: SettingsService;
  setupCodes: SetupCodeService;
  breakglass: BreakglassService;
  providers: ProviderService;
  agents: AgentService;
  agentConfigs: AgentConfigService;
}) {
  const { keyring, settings } = deps;
  return {
    /** What already exists (a breakglass made with the CLI counts). */
    async currentSetup(): Promise<Pick<OnboardingState, 'adminId'> & { oidc: boolean }> {
      const admin = await deps.breakglass.existing();
      return { adminId: admin?.status === 'active' ? admin.id : null, oidc: Boolean(await settings.oidcIssuer()) };
    },

    createBreakglass(input: BreakglassInput): Promise<{ userId: string }> {
      return businessErrorsFinal(async () => ({ userId: (await deps.breakglass.create({ ...input })).id }));
    },

    saveOidc(input: { issuerUrl: string; clientId: string; clientSecretEnc: string }): Promise<void> {
      return businessErrorsFinal(async () => {
        await discoverOidcIssuer(input.issuerUrl);
        await settings.saveOidc({ issuer: input.issuerUrl, clientId: input.clientId, clientSecretEnc: input.clientSecretEnc });
      });
    },

    /** Creates (once, by name) and tests the admin's first provider; a failing test removes it again. */
    createFirstProvider(adminId: string, input: NonNullable<ProviderStepInput['provider']>): Promise<{ providerId: string }> {
      return businessErrorsFinal(async () => {
        const existing = await deps.providers.findByName(adminId, input.name);
        if (existing) return { providerId: existing.id };
        const { apiKeyEnc, ...rest } = input;
        const provider = await deps.providers.create(adminId, { ...rest, apiKey: apiKeyEnc ? keyring.decrypt(apiKeyEnc) : undefined } as ProviderInput);
        const test = await deps.providers.test(adminId, provider.id);
        if (!test.ok) {
          await deps.providers.remove(adminId, provider.id);
          throw new ValidationError(`The provider did not answer: ${test.error}`, undefined, 'provider_test_failed');
        }
        return { providerId: provider.id };
      });
    },

    createSystemAgents(adminId: string, specs: SystemAgentSpec[]): Promise<{ agentIds: string[] }> {
      return businessErrorsFinal(async () => {
        const agentIds: string[] = [];
        for (const spec of specs) {
          // Another user's provider id reads as unknown (owned() is scoped to the admin).
          await deps.providers.owned(adminId, spec.providerId).catch((err) => {
            if (err instanceof NotFoundError) throw new ValidationError(`providerId ${spec.providerId} is not one of the admin's providers`, undefined, 'invalid_provider');
            throw err;
          });
          const agent = await deps.agents.getOrCreate('system', spec.name);
          await deps.agentConfigs.putFor('system', spec.name, { primaryModel: spec.primaryModel, fallbackModels: [], personality: spec.role, providerId: spec.providerId });
          agentIds.push(agent.id);
        }
        return { agentIds };
      });
    },

    async completeOnboarding(steps: OnboardingState['steps']): Promise<void> {
      await settings.completeOnboarding(steps);
      await deps.setupCodes.discard();
    },
  };
}
