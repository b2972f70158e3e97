// Pure types for the first-boot wizard, shared by the workflow and the API.

export const ONBOARDING_WORKFLOW_ID = 'onboarding';
export const ONBOARDING_COMPLETED_KEY = 'onboarding.completed';

export type StepStatus = 'pending' | 'done' | 'skipped';
export type OnboardingStep = 'breakglass' | 'oidc' | 'provider' | 'systemAgents';

export interface OnboardingState {
  completed: boolean;
  steps: Record<OnboardingStep, StepStatus>;
  adminId: string | null;
}

/** The password is hashed by the API first: no plaintext ever lands in workflow history. */
export interface BreakglassInput {
  username: string;
  passwordHash: string;
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
