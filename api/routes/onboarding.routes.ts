import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ConflictError, ForbiddenError, UnauthorizedError } from '../../core/errors.ts';
import { toPublicUser } from '../../core/services/users.service.ts';
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

/** The wizard's REST face: each POST is one step of the `onboarding` workflow (core/control/onboarding-control.ts). */
export async function onboardingRoutes(fastify: FastifyInstance, { core, auth, secureCookies, loginThrottle }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { onboarding } = core;

  async function requireOnboardingAdmin(request: FastifyRequest, reply: FastifyReply) {
    await auth.requireUser(request, reply);
    if (request.user!.role !== 'admin') throw new ForbiddenError('Only the admin may run onboarding', 'admin_required');
  }

  app.get('/api/onboarding', { schema: { response: { 200: StateView, ...errors(503) } } }, () => onboarding.state());

  app.post('/api/onboarding/breakglass', {
    schema: {
      body: strict({
        username: Type.String({ pattern: '^[a-zA-Z0-9][a-zA-Z0-9._-]{2,62}$' }),
        password: Type.String({ minLength: 12, maxLength: 1024 }),
        // Optional in the schema so that a missing code answers like a wrong one: 401.
        setupCode: Type.Optional(Type.String({ maxLength: 64 })),
      }),
      response: { 201: Type.Object({ user: PublicUser }), ...errors(400, 401, 409, 429, 503) },
    },
  }, async (request, reply) => {
    // Guessing the code is throttled per address like a sign-in.
    loginThrottle.check('setup-code', request.ip);
    let user;
    try {
      user = await onboarding.claim(request.body);
    } catch (err) {
      if (err instanceof UnauthorizedError) loginThrottle.fail('setup-code', request.ip);
      throw err;
    }
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
    return onboarding.oidc(request.body);
  });

  app.post('/api/onboarding/provider', {
    preHandler: requireOnboardingAdmin,
    schema: { body: Type.Union([Skip, CreateProvider]), response: { 201: Type.Object({ providerId: Type.Union([Type.String(), Type.Null()]) }), ...errors(400, 401, 403, 409, 503) } },
  }, async (request, reply) => {
    return reply.code(201).send(await onboarding.provider(request.body));
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
  }, async (request) => onboarding.systemAgents(request.body));

  app.post('/api/onboarding/complete', {
    schema: { response: { 200: Type.Object({ completed: Type.Literal(true) }), ...errors(401, 403, 409, 503) } },
  }, async (request, reply) => {
    // Without a breakglass there is nobody to sign in as: say so before asking for a session.
    const state = await onboarding.state();
    if (state.completed) throw new ConflictError('Onboarding is already complete', 'onboarding_completed');
    if (state.steps.breakglass !== 'done') throw new ConflictError('Create the breakglass admin first', 'breakglass_required');
    await requireOnboardingAdmin(request, reply);
    await onboarding.complete();
    // System agents are always on: bring them up now, without holding the wizard's answer.
    // (A refusal when too many agents are starting is thrown at once, not
    // rejected: it must not turn the completed onboarding's answer into a 429.)
    for (const agent of await core.agents.listSystemAgents()) {
      void Promise.resolve()
        .then(() => core.agentControl.ensureRunning(agent))
        .catch((err: unknown) => request.log.warn({ err, agentId: agent.id }, 'system agent did not start'));
    }
    return { completed: true as const };
  });
}
