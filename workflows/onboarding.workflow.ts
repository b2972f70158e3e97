import { ApplicationFailure, allHandlersFinished, condition, log, proxyActivities, setHandler } from '@temporalio/workflow';
import type { createOnboardingActivities } from '../activities/onboarding.activities.ts';
import {
  breakglassUpdate,
  completeUpdate,
  oidcUpdate,
  onboardingStateQuery,
  providerUpdate,
  setupChangedSignal,
  systemAgentsUpdate,
  type OidcInput,
  type OnboardingState,
  type OnboardingWorkflow,
  type ProviderStepInput,
  type SystemAgentsInput,
} from '../core/contracts/onboarding.contract.ts';

// The first-boot wizard, one update per step, each with a validator. Its state
// lives here and in the database, so an API restart between steps loses
// nothing, and repeating a step is harmless.

const acts = proxyActivities<ReturnType<typeof createOnboardingActivities>>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 5 },
});

const reject = (message: string, code: string): never => {
  throw ApplicationFailure.nonRetryable(message, code);
};

export const onboarding: OnboardingWorkflow = async () => {
  const state: OnboardingState = {
    completed: false,
    steps: { breakglass: 'pending', oidc: 'pending', provider: 'pending', systemAgents: 'pending' },
    adminId: null,
  };
  const needsAdmin = () => {
    if (!state.adminId) reject('Create the breakglass admin first', 'breakglass_required');
    if (state.completed) reject('Onboarding is complete', 'onboarding_completed');
  };

  /** What the database says already exists (a breakglass made with the CLI counts). */
  async function learn(): Promise<void> {
    const seen = await acts.currentSetup();
    if (seen.adminId && !state.adminId) {
      state.adminId = seen.adminId;
      state.steps.breakglass = 'done';
    }
    if (seen.oidc && state.steps.oidc === 'pending') state.steps.oidc = 'done';
  }

  // Breakglass requests run one at a time: updates that raced past the
  // validator (buffered on a just-started run) see the first one's result
  // here and are refused, instead of all reaching the database.
  let breakglassTail: Promise<unknown> = Promise.resolve();

  setHandler(onboardingStateQuery, () => state);
  // Looks one at a time; a failed look (the database down past every retry) is logged, and the next one tries again.
  let learning: Promise<void> = Promise.resolve();
  function learnAfterSignal(): Promise<void> {
    learning = learning.then(learn).catch((err) => log.warn('could not read the setup', { message: (err as Error).message }));
    return learning;
  }
  setHandler(setupChangedSignal, () => void learnAfterSignal());

  setHandler(
    breakglassUpdate,
    (input) => {
      const run = breakglassTail.then(async () => {
        if (state.steps.breakglass === 'done') reject('A breakglass admin already exists', 'breakglass_exists');
        try {
          const { userId } = await acts.createBreakglass(input);
          state.adminId = userId;
          state.steps.breakglass = 'done';
          return { userId };
        } catch (err) {
          // Someone else (the CLI) made it meanwhile: remember who, then refuse.
          await learn();
          throw err;
        }
      });
      breakglassTail = run.catch(() => undefined);
      return run;
    },
    {
      validator: (input) => {
        if (state.steps.breakglass === 'done') reject('A breakglass admin already exists', 'breakglass_exists');
        if (!input?.username || !input.credentialRef || !input.setupCodeHash) reject('username, a credential reference and the setup code are required', 'invalid_input');
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
  await learnAfterSignal();

  await condition(() => state.completed && allHandlersFinished());
  return state;
};
