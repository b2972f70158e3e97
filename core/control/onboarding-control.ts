import {
  breakglassUpdate,
  completeUpdate,
  oidcUpdate,
  providerUpdate,
  setupChangedSignal,
  systemAgentsUpdate,
  type OidcInput,
  type OnboardingState,
  type ProviderStepInput,
  type SystemAgentsInput,
} from '../contracts/onboarding.contract.ts';
import type { Keyring } from '../crypto.ts';
import type { User } from '../db.ts';
import { ConflictError, UnauthorizedError } from '../errors.ts';
import type { BreakglassService } from '../services/breakglass.service.ts';
import { hashPassword } from '../services/passwords.service.ts';
import type { SettingsService } from '../services/settings.service.ts';
import { hashSetupCode, type SetupCodeService } from '../services/setup-code.service.ts';
import type { UserService } from '../services/users.service.ts';
import { TemporalUnavailableError } from './failures.ts';
import type { TemporalPort } from './temporal.port.ts';

// The first-boot wizard as the API and the CLI see it. Each step is an update
// of the `onboarding` workflow; secrets are hashed, parked or encrypted here,
// before anything reaches workflow history.

export type OnboardingView = Pick<OnboardingState, 'completed' | 'steps'>;

export function createOnboardingControl(deps: {
  temporal: TemporalPort;
  settings: SettingsService;
  setupCodes: SetupCodeService;
  breakglass: BreakglassService;
  users: UserService;
  keyring: Keyring;
}) {
  const { temporal, settings } = deps;
  // Completion never reverts: once seen, it costs nothing per request.
  let complete = false;

  async function isComplete(): Promise<boolean> {
    if (!complete) complete = (await settings.onboardingCompleted()) !== null;
    return complete;
  }

  async function step<R>(def: Parameters<TemporalPort['onboarding']['step']>[0], ...args: unknown[]): Promise<R> {
    if (await isComplete()) throw new ConflictError('Onboarding is already complete', 'onboarding_completed');
    return temporal.onboarding.step<R>(def, args);
  }

  const view = (s: OnboardingView): OnboardingView => ({ completed: s.completed, steps: s.steps });

  return {
    isComplete,

    async state(): Promise<OnboardingView> {
      const done = await settings.onboardingCompleted();
      if (done) return { completed: true, steps: done };
      return view(await temporal.onboarding.state());
    },

    /** The setup code, made if needed; null when the instance is claimed already. */
    async setupCode(): Promise<string | null> {
      const claimable = !(await isComplete()) && !(await deps.breakglass.existing());
      return deps.setupCodes.ensure({ claimable });
    },

    /**
     * The wizard's first step. Cheap checks first (completed? right code?),
     * so an unauthenticated caller cannot make the API spend a bcrypt hash.
     */
    async claim(req: { username: string; password: string; setupCode?: string }): Promise<User> {
      if (await isComplete()) throw new ConflictError('Onboarding is already complete', 'onboarding_completed');
      if (!req.setupCode || !(await deps.setupCodes.matches(req.setupCode))) {
        if (await deps.breakglass.existing()) throw new ConflictError('A breakglass admin already exists', 'breakglass_exists');
        throw new UnauthorizedError('That setup code is not valid (it is printed by `npm start`, or run `npx hangar setup-code` at the console)', 'invalid_setup_code');
      }
      const credentialRef = await deps.breakglass.parkCredential(await hashPassword(req.password));
      const setupCodeHash = hashSetupCode(req.setupCode);
      const { userId } = await step<{ userId: string }>(breakglassUpdate, { username: req.username, credentialRef, setupCodeHash });
      return deps.users.get(userId);
    },

    /** The CLI's breakglass: same service, same one-breakglass rule; the workflow is told. */
    async claimFromConsole(req: { username: string; password: string }): Promise<User> {
      if (await isComplete()) throw new ConflictError('Onboarding is already complete', 'onboarding_completed');
      const user = await deps.breakglass.create({ username: req.username, passwordHash: await hashPassword(req.password), setupCodeHash: null });
      await deps.setupCodes.discard();
      try {
        await temporal.onboarding.signal(setupChangedSignal);
      } catch (err) {
        // Not running yet: the workflow reads the database when it starts.
        if (!(err instanceof TemporalUnavailableError)) throw err;
      }
      return user;
    },

    async oidc(input: { skip: true } | { issuerUrl: string; clientId: string; clientSecret: string }): Promise<OnboardingView> {
      const arg: OidcInput = 'skip' in input ? { skip: true } : { issuerUrl: input.issuerUrl, clientId: input.clientId, clientSecretEnc: deps.keyring.encrypt(input.clientSecret) };
      return view(await step<OnboardingState>(oidcUpdate, arg));
    },

    async provider(input: { skip: true } | (Omit<NonNullable<ProviderStepInput['provider']>, 'apiKeyEnc'> & { apiKey?: string })): Promise<{ providerId: string | null }> {
      if ('skip' in input) return step(providerUpdate, { skip: true } satisfies ProviderStepInput);
      const { apiKey, ...rest } = input;
      return step(providerUpdate, { provider: { ...rest, apiKeyEnc: apiKey ? deps.keyring.encrypt(apiKey) : undefined } } satisfies ProviderStepInput);
    },

    systemAgents(input: SystemAgentsInput): Promise<{ agentIds: string[] }> {
      return step(systemAgentsUpdate, input);
    },

    async complete(): Promise<OnboardingView> {
      const s = await step<OnboardingState>(completeUpdate);
      complete = true;
      return view(s);
    },
  };
}

export type OnboardingControl = ReturnType<typeof createOnboardingControl>;
