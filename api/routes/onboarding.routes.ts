import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { WithStartWorkflowOperation, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { Type } from 'typebox';
import { CONTROL_TASK_QUEUE } from '../../core/contracts/agent.contract.ts';
import { ONBOARDING_COMPLETED_KEY, ONBOARDING_WORKFLOW_ID, type OnboardingState } from '../../core/contracts/onboarding.contract.ts';
import { AppError, ConflictError, ForbiddenError, ValidationError } from '../../core/errors.ts';
import { hashPassword, toPublicUser } from '../../core/services/users.service.ts';
import {
  breakglassUpdate,
  completeUpdate,
  oidcUpdate,
  onboarding,
  onboardingStateQuery,
  providerUpdate,
  systemAgentsUpdate,
} from '../../workflows/onboarding.workflow.ts';
import { setSessionCookie } from '../auth.ts';
import { errors, PublicUser, strict } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';
import { CreateProvider } from './providers.routes.ts';

const Step = Type.Union([Type.Literal('pending'), Type.Literal('done'), Type.Literal('skipped')]);
const StateView = Type.Object({
  completed: Type.Boolean(),
  steps: Type.Object({ breakglass: Step, oidc: Step, provider: Step, systemAgents: Step }),
});
const Skip = strict({ skip: Type.Literal(true) });

const UPDATE_ERRORS: Record<string, (m: string) => AppError> = {
  breakglass_exists: (m) => new ConflictError(m, 'breakglass_exists'),
  breakglass_required: (m) => new ConflictError(m, 'breakglass_required'),
  onboarding_completed: (m) => new ConflictError(m, 'onboarding_completed'),
  oidc_discovery_failed: (m) => new ValidationError(m, undefined, 'oidc_discovery_failed'),
  provider_test_failed: (m) => new ValidationError(m, undefined, 'provider_test_failed'),
  invalid_provider: (m) => new ValidationError(m, undefined, 'invalid_provider'),
  duplicate_name: (m) => new ConflictError(m, 'duplicate_name'),
};

/** The wizard's REST face: each POST is one update of the `onboarding` workflow. */
export async function onboardingRoutes(fastify: FastifyInstance, { core, auth, control, temporal, secureCookies, onboardingGate }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

  const start = () =>
    new WithStartWorkflowOperation(onboarding, {
      workflowId: ONBOARDING_WORKFLOW_ID,
      taskQueue: CONTROL_TASK_QUEUE,
      workflowIdConflictPolicy: 'USE_EXISTING',
      args: [],
      staticSummary: 'First-boot onboarding wizard',
    });

  async function update<R, A extends unknown[]>(def: Parameters<Client['workflow']['executeUpdateWithStart']>[0], ...args: A): Promise<R> {
    if (await onboardingGate.isComplete()) throw new ConflictError('Onboarding is already complete', 'onboarding_completed');
    try {
      return (await temporal.workflow.executeUpdateWithStart(def as never, { args: args as never, startWorkflowOperation: start() })) as R;
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) {
        // Activity failures wrap the business error: look down the chain for a known type.
        for (let c = err.cause as { type?: string; message?: string; cause?: unknown } | undefined; c; c = c.cause as typeof c) {
          const make = c.type ? UPDATE_ERRORS[c.type] : undefined;
          if (make) throw make(c.message ?? 'refused');
        }
      }
      throw err;
    }
  }

  async function requireOnboardingAdmin(request: FastifyRequest, reply: FastifyReply) {
    await auth.requireUser(request, reply);
    if (request.user!.role !== 'admin') throw new ForbiddenError('Only the admin may run onboarding', 'admin_required');
  }

  async function readState(): Promise<{ completed: boolean; steps: OnboardingState['steps'] }> {
    const done = await core.db.systemConfig.findUnique({ where: { key: ONBOARDING_COMPLETED_KEY } });
    if (done) return { completed: true, steps: JSON.parse(done.value) };
    const handle = await temporal.workflow.start(onboarding, {
      workflowId: ONBOARDING_WORKFLOW_ID,
      taskQueue: CONTROL_TASK_QUEUE,
      workflowIdConflictPolicy: 'USE_EXISTING',
      args: [],
      staticSummary: 'First-boot onboarding wizard',
    });
    const state = await handle.query(onboardingStateQuery);
    return { completed: state.completed, steps: state.steps };
  }

  app.get('/api/onboarding', { schema: { response: { 200: StateView, ...errors(503) } } }, readState);

  app.post('/api/onboarding/breakglass', {
    schema: {
      body: strict({
        username: Type.String({ pattern: '^[a-zA-Z0-9][a-zA-Z0-9._-]{2,62}$' }),
        password: Type.String({ minLength: 12, maxLength: 1024 }),
      }),
      response: { 201: Type.Object({ user: PublicUser }), ...errors(400, 409, 503) },
    },
  }, async (request, reply) => {
    // Refused before the (deliberately slow) bcrypt hash: once onboarding is
    // done this unauthenticated route must cost nothing to call.
    if (await onboardingGate.isComplete()) throw new ConflictError('Onboarding is already complete', 'onboarding_completed');
    const passwordHash = await hashPassword(request.body.password);
    const { userId } = await update<{ userId: string }, [unknown]>(breakglassUpdate, { username: request.body.username, passwordHash });
    const user = await core.users.get(userId);
    const session = await core.users.createSession(user.id);
    setSessionCookie(request, reply, session, secureCookies);
    return reply.code(201).send({ user: toPublicUser(user) });
  });

  app.post('/api/onboarding/oidc', {
    preHandler: requireOnboardingAdmin,
    schema: {
      body: Type.Union([
        Skip,
        strict({
          issuerUrl: Type.String({ pattern: '^https?://[^\\s]+$', maxLength: 2000 }),
          clientId: Type.String({ minLength: 1, maxLength: 500 }),
          clientSecret: Type.String({ minLength: 1, maxLength: 4096 }),
        }),
      ]),
      response: { 200: StateView, ...errors(400, 401, 403, 409, 503) },
    },
  }, async (request) => {
    const body = request.body;
    const input = 'skip' in body ? { skip: true } : { issuerUrl: body.issuerUrl, clientId: body.clientId, clientSecretEnc: core.keyring.encrypt(body.clientSecret) };
    const state = await update<OnboardingState, [unknown]>(oidcUpdate, input);
    return { completed: state.completed, steps: state.steps };
  });

  app.post('/api/onboarding/provider', {
    preHandler: requireOnboardingAdmin,
    schema: { body: Type.Union([Skip, CreateProvider]), response: { 201: Type.Object({ providerId: Type.Union([Type.String(), Type.Null()]) }), ...errors(400, 401, 403, 409, 503) } },
  }, async (request, reply) => {
    const body = request.body;
    const input = 'skip' in body ? { skip: true } : { provider: { ...body, apiKey: undefined, apiKeyEnc: body.apiKey ? core.keyring.encrypt(body.apiKey) : undefined } };
    return reply.code(201).send(await update<{ providerId: string | null }, [unknown]>(providerUpdate, input));
  });

  app.post('/api/onboarding/system-agents', {
    preHandler: requireOnboardingAdmin,
    schema: {
      body: Type.Union([
        Skip,
        strict({
          agents: Type.Array(
            strict({
              name: Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,40}$' }),
              role: Type.String({ minLength: 1, maxLength: 2000 }),
              providerId: Type.String({ minLength: 1, maxLength: 64 }),
              primaryModel: Type.String({ minLength: 1, maxLength: 300 }),
            }),
            { minItems: 1, maxItems: 20 },
          ),
        }),
      ]),
      response: { 200: Type.Object({ agentIds: Type.Array(Type.String()) }), ...errors(400, 401, 403, 409, 503) },
    },
  }, async (request) => update<{ agentIds: string[] }, [unknown]>(systemAgentsUpdate, request.body));

  app.post('/api/onboarding/complete', {
    schema: { response: { 200: Type.Object({ completed: Type.Literal(true) }), ...errors(401, 403, 409, 503) } },
  }, async (request, reply) => {
    // Without a breakglass there is nobody to sign in as: say so before asking for a session.
    const state = await readState();
    if (state.completed) throw new ConflictError('Onboarding is already complete', 'onboarding_completed');
    if (state.steps.breakglass !== 'done') throw new ConflictError('Create the breakglass admin first', 'breakglass_required');
    await requireOnboardingAdmin(request, reply);
    await update<OnboardingState, []>(completeUpdate);
    onboardingGate.markComplete();
    // System agents are always on: bring them up now, without holding the wizard's answer.
    for (const agent of await core.agents.listSystemAgents()) {
      control.ensureRunning(agent).catch((err) => request.log.warn({ err, agentId: agent.id }, 'system agent did not start'));
    }
    return { completed: true as const };
  });
}
