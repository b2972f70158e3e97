import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { UnauthorizedError } from '../../core/errors.ts';
import { errors, Id, strict } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';

export async function internalRoutes(fastify: FastifyInstance, { core }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

  // Agents only, once per start: the bearer is the bootstrap token from the
  // container's env, spent by this call; the answer carries the gateway token
  // minted for this start (gateway.auth.token). A wrong, spent or expired
  // token, or another agent's, gets the same 401, so nothing about the agent leaks.
  app.get('/api/internal/agent-config/:kind/:id', {
    schema: {
      params: strict({ kind: Type.Union(['user', 'workspace', 'system'].map((k) => Type.Literal(k))), id: Id }),
      response: {
        200: Type.Object({ gateway: Type.Unknown(), agents: Type.Unknown(), models: Type.Unknown() }),
        ...errors(400, 401),
      },
    },
  }, async (request, reply) => {
    const header = request.headers.authorization;
    const bearer = header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
    const exchanged = await core.agents.exchangeBootstrapToken(request.params.kind, request.params.id, bearer);
    if (!exchanged) throw new UnauthorizedError('Not a valid bootstrap token for this agent (wrong, expired or already used)', 'invalid_agent_token');
    // Holds this start's gateway token: never cached on the way.
    void reply.header('cache-control', 'no-store');
    return core.agentConfigs.runtimeConfig(exchanged.agent);
  });
}
