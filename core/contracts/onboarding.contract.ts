import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';

// The first-boot wizard's contract, shared by the workflow and the API.

export const ONBOARDING_WORKFLOW_ID = 'onboarding';
export const ONBOARDING_COMPLETED_KEY = 'onboarding.completed';

export type StepStatus = 'pending' | 'done' | 'skipped';
export type OnboardingStep = 'breakglass' | 'oidc' | 'provider' | 'systemAgents';

export interface OnboardingState {
  completed: boolean;
  steps: Record<OnboardingStep, StepStatus>;
  adminId: string | null;
}

/**
 * The API checks the setup code, hashes the password and parks the hash:
 * workflow history carries a reference to it, never a password or its hash.
 */
export interface BreakglassInput {
  username: string;
  credentialRef: string;
  /** sha256 of the setup code; creating the breakglass uses the code up. */
  setupCodeHash: string;
}

/** The client secret arrives encrypted (enc:v1:…) for the same reason. */
export type OidcInput = { skip: true } | { issuerUrl: string; clientId: string; clientSecretEnc: string };

export interface ProviderStepInput {
  skip?: boolean;
  provider?: {
    name: string;
    displayName: string;
    type: string;
    baseUrl?: string;
    apiKeyEnc?: string;
    apiType?: string;
    models?: Array<{ id: string; name?: string; contextWindow?: number; maxTokens?: number }>;
  };
}

export interface SystemAgentSpec {
  name: string;
  role: string;
  providerId: string;
  primaryModel: string;
}

export type SystemAgentsInput = { skip: true } | { agents: SystemAgentSpec[] };

export const ONBOARDING_WORKFLOW = 'onboarding';
export type OnboardingWorkflow = () => Promise<OnboardingState>;

export const onboardingStateQuery = defineQuery<OnboardingState>('state');
export const breakglassUpdate = defineUpdate<{ userId: string }, [BreakglassInput]>('breakglass');
export const oidcUpdate = defineUpdate<OnboardingState, [OidcInput]>('oidc');
export const providerUpdate = defineUpdate<{ providerId: string | null }, [ProviderStepInput]>('provider');
export const systemAgentsUpdate = defineUpdate<{ agentIds: string[] }, [SystemAgentsInput]>('systemAgents');
export const completeUpdate = defineUpdate<OnboardingState, []>('complete');
/** The CLI made the breakglass (or something else changed the setup): look again. */
export const setupChangedSignal = defineSignal('setupChanged');
