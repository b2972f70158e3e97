import { randomUUID } from 'node:crypto';
import { WithStartWorkflowOperation, WorkflowUpdateFailedError, WorkflowUpdateStage } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  breakglassUpdate,
  completeUpdate,
  oidcUpdate,
  ONBOARDING_WORKFLOW,
  onboardingStateQuery,
  providerUpdate,
  setupChangedSignal,
  systemAgentsUpdate,
  type BreakglassInput,
  type OnboardingState,
  type OnboardingWorkflow,
} from '../../core/contracts/onboarding.contract.ts';
import { keepHistory, signalHandled, startTier, waitFor, type ControlActivities, type Tier } from '../support/workflow-tier.harness.ts';

// The first-boot wizard: each step's validator, steps repeated or skipped,
// breakglass requests that race each other or the CLI, and completion.

const breakglass = (username = 'admin'): BreakglassInput => ({ username, credentialRef: `cred-${username}`, setupCodeHash: 'code-hash' });

describe('onboarding (time-skipping)', () => {
  const calls: string[] = [];
  /** The database: who the breakglass admin is (made by the wizard or the CLI). */
  let db = { adminId: null as string | null, oidc: false };
  let holdBreakglass: Promise<void> | null = null;
  const acts: Partial<ControlActivities> = {
    currentSetup: async () => ({ ...db }),
    createBreakglass: async (input) => {
      calls.push(`breakglass ${input.username}`);
      if (holdBreakglass) await holdBreakglass;
      // As the service: one breakglass, ever.
      if (db.adminId) throw ApplicationFailure.nonRetryable('A breakglass admin already exists', 'breakglass_exists');
      db.adminId = `user-${input.username}`;
      return { userId: db.adminId };
    },
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

  function fresh(setup: { adminId: string | null; oidc: boolean }) {
    calls.length = 0;
    db = { ...setup };
    holdBreakglass = null;
    const workflowId = `onboarding/${randomUUID()}`;
    // As the API sends its steps: update-with-start, so the first one may
    // reach the workflow before its own look at the database has answered.
    const op = () => new WithStartWorkflowOperation<OnboardingWorkflow>(ONBOARDING_WORKFLOW, { workflowId, taskQueue: t.taskQueue, workflowIdConflictPolicy: 'USE_EXISTING', args: [] });
    const handle = t.client.workflow.getHandle<OnboardingWorkflow>(workflowId);
    return { handle, op };
  }

  /** The business code a refused update carries, wherever in the cause chain. */
  async function refused(p: Promise<unknown>): Promise<string | undefined> {
    const err = await p.then(() => null, (e) => e);
    expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
    for (let c = err as { type?: string; cause?: unknown } | undefined; c; c = c.cause as typeof c) if (c.type) return c.type;
    return undefined;
  }

  it('walks the steps once the admin exists; validators refuse what does not fit', async () => {
    const { handle, op } = fresh({ adminId: null, oidc: false });
    expect(await refused(t.client.workflow.executeUpdateWithStart(oidcUpdate, { args: [{ skip: true }], startWorkflowOperation: op() }))).toBe('breakglass_required');
    expect(await refused(handle.executeUpdate(completeUpdate))).toBe('breakglass_required');
    expect(await refused(handle.executeUpdate(breakglassUpdate, { args: [{ ...breakglass(), credentialRef: '' }] }))).toBe('invalid_input');
    expect(calls).toEqual([]);

    expect(await handle.executeUpdate(breakglassUpdate, { args: [breakglass()] })).toEqual({ userId: 'user-admin' });
    expect(await refused(handle.executeUpdate(breakglassUpdate, { args: [breakglass('again')] }))).toBe('breakglass_exists');

    const provider = { name: 'openai', displayName: 'OpenAI', type: 'openai', apiKeyEnc: 'enc:v1:k:x' };
    expect(await handle.executeUpdate(providerUpdate, { args: [{ provider }] })).toEqual({ providerId: 'prov-1' });
    // Skipping a step that is done keeps it done.
    expect(await handle.executeUpdate(providerUpdate, { args: [{ skip: true }] })).toEqual({ providerId: null });
    expect((await handle.executeUpdate(oidcUpdate, { args: [{ issuerUrl: 'https://idp.test', clientId: 'c', clientSecretEnc: 'enc:v1:k:y' }] })).steps.oidc).toBe('done');
    expect(await handle.executeUpdate(systemAgentsUpdate, { args: [{ agents: [{ name: 'helper', role: 'ops', providerId: 'prov-1', primaryModel: 'm' }] }] })).toEqual({ agentIds: ['agent-0'] });
    expect(await handle.query(onboardingStateQuery)).toEqual({
      completed: false,
      adminId: 'user-admin',
      steps: { breakglass: 'done', oidc: 'done', provider: 'done', systemAgents: 'done' },
    } satisfies OnboardingState);

    const done = await handle.executeUpdate(completeUpdate);
    expect(done.completed).toBe(true);
    expect(await handle.result()).toEqual(done);
    expect(calls).toEqual([
      'breakglass admin',
      'provider openai by user-admin',
      'oidc https://idp.test',
      'agents helper by user-admin',
      'complete {"breakglass":"done","oidc":"done","provider":"done","systemAgents":"done"}',
    ]);
    await keepHistory(handle, 'onboarding-walk');
  });

  it('two breakglass requests racing on a new wizard: one admin, the other refused without touching the database', async () => {
    const { handle, op } = fresh({ adminId: null, oidc: false });
    let open!: () => void;
    holdBreakglass = new Promise<void>((r) => (open = r));
    const accepted = { waitForStage: WorkflowUpdateStage.ACCEPTED } as const;
    const first = await t.client.workflow.startUpdateWithStart(breakglassUpdate, { args: [breakglass('first')], startWorkflowOperation: op(), ...accepted });
    await waitFor(() => calls.length === 1, 'the first request to reach the database');
    const second = await handle.startUpdate(breakglassUpdate, { args: [breakglass('second')], ...accepted });
    open();
    expect(await first.result()).toEqual({ userId: 'user-first' });
    expect(await refused(second.result())).toBe('breakglass_exists');
    expect(calls).toEqual(['breakglass first']);
    await keepHistory(handle, 'onboarding-breakglass-race');
    await handle.terminate('test done');
  });

  it('an admin made with the CLI counts: before the wizard, racing its first request, or while it runs', async () => {
    // Made before, and the wizard's first request races the workflow's look at the database.
    const before = fresh({ adminId: 'cli-admin', oidc: true });
    expect(await refused(t.client.workflow.executeUpdateWithStart(breakglassUpdate, { args: [breakglass()], startWorkflowOperation: before.op() }))).toBe('breakglass_exists');
    expect(await before.handle.query(onboardingStateQuery)).toMatchObject({ adminId: 'cli-admin', steps: { breakglass: 'done', oidc: 'done', provider: 'pending', systemAgents: 'pending' } });
    expect(await before.handle.executeUpdate(systemAgentsUpdate, { args: [{ skip: true }] })).toEqual({ agentIds: [] });
    const done = await before.handle.executeUpdate(completeUpdate);
    expect(done).toEqual({ completed: true, adminId: 'cli-admin', steps: { breakglass: 'done', oidc: 'done', provider: 'skipped', systemAgents: 'skipped' } });
    expect(calls.at(-1)).toBe('complete {"breakglass":"done","oidc":"done","provider":"skipped","systemAgents":"skipped"}');
    await keepHistory(before.handle, 'onboarding-cli-admin');

    // Made while the wizard runs: the CLI signals, and the workflow looks again.
    const during = fresh({ adminId: null, oidc: false });
    expect(await refused(t.client.workflow.executeUpdateWithStart(completeUpdate, { startWorkflowOperation: during.op() }))).toBe('breakglass_required');
    db.adminId = 'cli-later';
    await during.handle.signal(setupChangedSignal);
    await signalHandled(during.handle, 'setupChanged');
    const seen = await waitFor(async () => {
      const s = await during.handle.query(onboardingStateQuery);
      return s.adminId ? s : null;
    }, 'the wizard to learn of the CLI admin');
    expect(seen).toMatchObject({ adminId: 'cli-later', steps: { breakglass: 'done' } });
    expect((await during.handle.executeUpdate(completeUpdate)).completed).toBe(true);
  });
});
