import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { UnauthorizedError } from '../../core/errors.ts';
import { errors, Id, strict } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';

export async function internalRoutes(fastify: FastifyInstance, { core }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

  // Agents only: the bearer must be the gateway token of the agent asked about.
  // Any other token gets the same 401, so nothing about the agent leaks.
  app.get('/api/internal/agent-config/:kind/:id', {
    schema: {
      params: strict({ kind: Type.Union(['user', 'workspace', 'system'].map((k) => Type.Literal(k))), id: Id }),
      response: {
        200: Type.Object({ gateway: Type.Unknown(), agents: Type.Unknown(), models: Type.Unknown() }),
        ...errors(400, 401),
      },
    },
  }, async (request) => {
    const header = request.headers.authorization;
    const bearer = header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
    const agent = await core.agents.verifyGatewayToken(request.params.kind, request.params.id, bearer);
    if (!agent) throw new UnauthorizedError('Not this agent\'s token', 'invalid_agent_token');
    return core.agentConfigs.runtimeConfig(agent);
  });
}
