import { ApplicationFailure, allHandlersFinished, condition, defineQuery, defineUpdate, patched, proxyActivities, setHandler } from '@temporalio/workflow';
import type { createOnboardingActivities } from '../activities/onboarding.activities.ts';
import type {
  BreakglassInput,
  OidcInput,
  OnboardingState,
  ProviderStepInput,
  SystemAgentsInput,
} from '../core/contracts/onboarding.contract.ts';

// The first-boot wizard, one update per step, each with a validator. Its state
// lives here and in the database, so an API restart between steps loses
// nothing, and repeating a step is harmless.
export const onboardingStateQuery = defineQuery<OnboardingState>('state');
export const breakglassUpdate = defineUpdate<{ userId: string }, [BreakglassInput]>('breakglass');
export const oidcUpdate = defineUpdate<OnboardingState, [OidcInput]>('oidc');
export const providerUpdate = defineUpdate<{ providerId: string | null }, [ProviderStepInput]>('provider');
export const systemAgentsUpdate = defineUpdate<{ agentIds: string[] }, [SystemAgentsInput]>('systemAgents');
export const completeUpdate = defineUpdate<OnboardingState, []>('complete');

const acts = proxyActivities<ReturnType<typeof createOnboardingActivities>>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 5 },
});

const reject = (message: string, code: string): never => {
  throw ApplicationFailure.nonRetryable(message, code);
};

export async function onboarding(): Promise<OnboardingState> {
  const state: OnboardingState = {
    completed: false,
    steps: { breakglass: 'pending', oidc: 'pending', provider: 'pending', systemAgents: 'pending' },
    adminId: null,
  };
  const needsAdmin = () => {
    if (!state.adminId) reject('Create the breakglass admin first', 'breakglass_required');
    if (state.completed) reject('Onboarding is complete', 'onboarding_completed');
  };

  // Set once currentSetup() has answered. The API's first call is an
  // update-with-start, whose update runs its validator before that answer.
  let setupKnown = false;

  setHandler(onboardingStateQuery, () => state);

  setHandler(
    breakglassUpdate,
    async (input) => {
      // The validator may have run before currentSetup() answered: an admin
      // made with the CLI must not be taken over by a first request naming it.
      if (patched('breakglass-waits-for-setup')) {
        await condition(() => setupKnown);
        if (state.steps.breakglass === 'done') reject('A breakglass admin already exists', 'breakglass_exists');
      }
      const { userId } = await acts.createBreakglass(input);
      state.adminId = userId;
      state.steps.breakglass = 'done';
      return { userId };
    },
    {
      validator: (input) => {
        if (state.steps.breakglass === 'done') reject('A breakglass admin already exists', 'breakglass_exists');
        if (!input?.username || !input.passwordHash?.startsWith('$2')) reject('username and a hashed password are required', 'invalid_input');
      },
    },
  );

  setHandler(
    oidcUpdate,
    async (input) => {
      if ('skip' in input) {
        if (state.steps.oidc !== 'done') state.steps.oidc = 'skipped';
      } else {
        await acts.saveOidc(input);
        state.steps.oidc = 'done';
      }
      return state;
    },
    { validator: (_input: OidcInput) => needsAdmin() },
  );

  setHandler(
    providerUpdate,
    async (input) => {
      if (input.skip || !input.provider) {
        if (state.steps.provider !== 'done') state.steps.provider = 'skipped';
        return { providerId: null };
      }
      const out = await acts.createFirstProvider(state.adminId!, input.provider);
      state.steps.provider = 'done';
      return out;
    },
    { validator: (_input: ProviderStepInput) => needsAdmin() },
  );

  setHandler(
    systemAgentsUpdate,
    async (input) => {
      if ('skip' in input) {
        if (state.steps.systemAgents !== 'done') state.steps.systemAgents = 'skipped';
        return { agentIds: [] };
      }
      const out = await acts.createSystemAgents(state.adminId!, input.agents);
      state.steps.systemAgents = 'done';
      return out;
    },
    { validator: (_input: SystemAgentsInput) => needsAdmin() },
  );

  setHandler(
    completeUpdate,
    async () => {
      for (const step of ['oidc', 'provider', 'systemAgents'] as const) {
        if (state.steps[step] === 'pending') state.steps[step] = 'skipped';
      }
      await acts.completeOnboarding(state.steps);
      state.completed = true;
      return state;
    },
    { validator: needsAdmin },
  );

  // A breakglass admin made with the CLI before the wizard counts as done.
  const seen = await acts.currentSetup();
  if (seen.adminId && !state.adminId) {
    state.adminId = seen.adminId;
    state.steps.breakglass = 'done';
  }
  if (seen.oidc && state.steps.oidc === 'pending') state.steps.oidc = 'done';
  setupKnown = true;

  await condition(() => state.completed && allHandlersFinished());
  return state;
}
