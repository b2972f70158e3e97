import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ConflictError, NotFoundError } from '../../core/errors.ts';
import { errors, Nullable } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';

// The user's side of fleet updates: "update available" and "Update now". How a
// workspace takes updates is in workspaces.routes.ts.

export async function updateRoutes(fastify: FastifyInstance, { core, auth, rolloutControl }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.addHook('preHandler', auth.requireUser);

  async function myAgent(userId: string) {
    const a = await core.agents.findOwned('user', userId);
    if (!a) throw new NotFoundError('Agent');
    return a;
  }

  app.get('/api/me/agent/update', {
    schema: {
      response: {
        200: Type.Object({ available: Type.Boolean(), toDigest: Nullable(Type.String()), changelog: Nullable(Type.String()), image: Type.String() }),
        ...errors(401, 404),
      },
    },
  }, async (request) => core.rollouts.offerFor(await myAgent(request.user!.id)));

  app.post('/api/me/agent/update', {
    schema: { response: { 202: Type.Object({ rolloutId: Type.String(), workflowId: Type.String() }), ...errors(400, 401, 403, 404, 409, 503) } },
  }, async (request, reply) => {
    const agent = await myAgent(request.user!.id);
    const offer = await core.rollouts.offerFor(agent);
    if (!offer.available || !offer.toDigest) throw new ConflictError('No update is available for your agent', 'no_update_available');
    const r = await rolloutControl.start({
      image: agent.image,
      toDigest: offer.toDigest,
      changelog: offer.changelog,
      agentIds: [agent.id],
      strategy: { kind: 'singleAgent' },
      ignoreWindows: true,
      trigger: 'user',
      startedById: request.user!.id,
    });
    return reply.code(202).send({ rolloutId: r.id, workflowId: r.workflowId });
  });
}
