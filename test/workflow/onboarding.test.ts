import { randomUUID } from 'node:crypto';
import { WithStartWorkflowOperation, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OnboardingState } from '../../core/contracts/onboarding.contract.ts';
import {
  breakglassUpdate,
  completeUpdate,
  oidcUpdate,
  onboarding,
  onboardingStateQuery,
  providerUpdate,
  systemAgentsUpdate,
} from '../../workflows/onboarding.workflow.ts';
import { keepHistory, startTier, type ControlActivities, type Tier } from '../support/workflow-tier.harness.ts';

// The first-boot wizard: each step's validator, steps repeated or skipped, a
// breakglass admin made by the CLI beforehand, and completion.

const HASH = '$2b$12$abcdefghijklmnopqrstuv';

describe('onboarding (time-skipping)', () => {
  const calls: string[] = [];
  let setup = { adminId: null as string | null, oidc: false };
  const acts: Partial<ControlActivities> = {
    currentSetup: async () => setup,
    createBreakglass: async (input) => (calls.push(`breakglass ${input.username}`), { userId: 'admin-1' }),
    saveOidc: async (input) => void calls.push(`oidc ${input.issuerUrl}`),
    createFirstProvider: async (adminId, p) => (calls.push(`provider ${p.name} by ${adminId}`), { providerId: 'prov-1' }),
    createSystemAgents: async (adminId, specs) => (calls.push(`agents ${specs.map((s) => s.name).join(',')} by ${adminId}`), { agentIds: specs.map((_, i) => `agent-${i}`) }),
    completeOnboarding: async (steps) => void calls.push(`complete ${JSON.stringify(steps)}`),
  };
  let t: Tier;

  beforeAll(async () => {
    t = await startTier({ name: 'onboarding', control: acts });
  });
  afterAll(async () => {
    await t?.shutdown();
  });

  const start = () => t.client.workflow.start(onboarding, { taskQueue: t.taskQueue, workflowId: `onboarding/${randomUUID()}` });

  async function refused(p: Promise<unknown>): Promise<string | undefined> {
    const err = await p.then(() => null, (e) => e);
    expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
    return (err.cause as { type?: string } | undefined)?.type;
  }

  it('walks the steps in any order once the admin exists; validators refuse what does not fit', async () => {
    calls.length = 0;
    setup = { adminId: null, oidc: false };
    const handle: WorkflowHandle<typeof onboarding> = await start();
    expect(await refused(handle.executeUpdate(oidcUpdate, { args: [{ skip: true }] }))).toBe('breakglass_required');
    expect(await refused(handle.executeUpdate(completeUpdate))).toBe('breakglass_required');
    expect(await refused(handle.executeUpdate(breakglassUpdate, { args: [{ username: 'admin', passwordHash: 'plaintext' }] }))).toBe('invalid_input');
    expect(calls).toEqual([]);

    expect(await handle.executeUpdate(breakglassUpdate, { args: [{ username: 'admin', passwordHash: HASH }] })).toEqual({ userId: 'admin-1' });
    expect(await refused(handle.executeUpdate(breakglassUpdate, { args: [{ username: 'again', passwordHash: HASH }] }))).toBe('breakglass_exists');

    const provider = { name: 'openai', displayName: 'OpenAI', type: 'openai', apiKeyEnc: 'enc:v1:k:x' };
    expect(await handle.executeUpdate(providerUpdate, { args: [{ provider }] })).toEqual({ providerId: 'prov-1' });
    // Skipping a step that is done keeps it done.
    expect(await handle.executeUpdate(providerUpdate, { args: [{ skip: true }] })).toEqual({ providerId: null });
    expect((await handle.executeUpdate(oidcUpdate, { args: [{ issuerUrl: 'https://idp.test', clientId: 'c', clientSecretEnc: 'enc:v1:k:y' }] })).steps.oidc).toBe('done');
    expect(await handle.executeUpdate(systemAgentsUpdate, { args: [{ agents: [{ name: 'helper', role: 'ops', providerId: 'prov-1', primaryModel: 'm' }] }] })).toEqual({ agentIds: ['agent-0'] });
    expect(await handle.query(onboardingStateQuery)).toEqual({
      completed: false,
      adminId: 'admin-1',
      steps: { breakglass: 'done', oidc: 'done', provider: 'done', systemAgents: 'done' },
    } satisfies OnboardingState);

    const done = await handle.executeUpdate(completeUpdate);
    expect(done.completed).toBe(true);
    expect(await handle.result()).toEqual(done);
    expect(calls).toEqual([
      'breakglass admin',
      'provider openai by admin-1',
      'oidc https://idp.test',
      'agents helper by admin-1',
      'complete {"breakglass":"done","oidc":"done","provider":"done","systemAgents":"done"}',
    ]);
    await keepHistory(handle, 'onboarding-walk');
  });

  it('counts a breakglass admin made with the CLI (even against a first request racing its look), and completing skips what is pending', async () => {
    calls.length = 0;
    setup = { adminId: 'cli-admin', oidc: true };
    // As the API sends it: update-with-start, so the update reaches the
    // workflow before its own look at the database has answered.
    const workflowId = `onboarding/${randomUUID()}`;
    const startOp = new WithStartWorkflowOperation(onboarding, { workflowId, taskQueue: t.taskQueue, workflowIdConflictPolicy: 'USE_EXISTING' });
    expect(await refused(t.client.workflow.executeUpdateWithStart(breakglassUpdate, { args: [{ username: 'admin', passwordHash: HASH }], startWorkflowOperation: startOp }))).toBe('breakglass_exists');
    expect(calls).toEqual([]);
    const handle = t.client.workflow.getHandle<typeof onboarding>(workflowId);
    expect(await handle.query(onboardingStateQuery)).toMatchObject({ adminId: 'cli-admin', steps: { breakglass: 'done', oidc: 'done', provider: 'pending', systemAgents: 'pending' } });
    expect(await handle.executeUpdate(systemAgentsUpdate, { args: [{ skip: true }] })).toEqual({ agentIds: [] });
    const done = await handle.executeUpdate(completeUpdate);
    expect(done).toEqual({ completed: true, adminId: 'cli-admin', steps: { breakglass: 'done', oidc: 'done', provider: 'skipped', systemAgents: 'skipped' } });
    expect(calls).toEqual(['complete {"breakglass":"done","oidc":"done","provider":"skipped","systemAgents":"skipped"}']);
    expect((await handle.result()).completed).toBe(true);
    await keepHistory(handle, 'onboarding-cli-admin');
  });
});
