import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { OWNER_KINDS } from '../../core/contracts/agent.contract.ts';
import { UnauthorizedError } from '../../core/errors.ts';
import { errors, Id, Nullable, strict } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';

const Params = strict({ kind: Type.Union(OWNER_KINDS.map((k) => Type.Literal(k))), id: Id });

const bearerOf = (headers: FastifyRequest['headers']) => {
  const header = headers.authorization;
  return header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
};

export async function internalRoutes(fastify: FastifyInstance, { core }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

  // Agents only, once per start: the bearer is the bootstrap token from the
  // container's env, spent by this call; the answer is OpenClaw's
  // openclaw.json as is (core/services/openclaw-config.service.ts builds it;
  // open objects in the schema: OpenClaw owns the shape), carrying the gateway
  // token minted for this start (gateway.auth.token). A wrong, spent or
  // expired token, or another agent's, gets the same 401: nothing leaks.
  app.get('/api/internal/agent-config/:kind/:id', {
    schema: {
      params: Params,
      response: {
        200: Type.Object({ gateway: Type.Unknown(), agents: Type.Unknown(), models: Type.Unknown() }, { additionalProperties: true }),
        ...errors(400, 401),
      },
    },
  }, async (request, reply) => {
    const exchanged = await core.agents.exchangeBootstrapToken(request.params.kind, request.params.id, bearerOf(request.headers));
    if (!exchanged) throw new UnauthorizedError('Not a valid bootstrap token for this agent (wrong, expired or already used)', 'invalid_agent_token');
    // Holds this start's gateway token: never cached on the way.
    void reply.header('cache-control', 'no-store');
    return core.agentConfigs.runtimeConfig(exchanged.agent);
  });

  // Workspace files Hangar owns (SOUL.md carries the personality); null: remove
  // Hangar's copy. Asked right after the config, with the gateway token it carried.
  app.get('/api/internal/agent-config/:kind/:id/workspace', {
    schema: {
      params: Params,
      response: {
        200: strict({ files: Type.Record(Type.String({ pattern: '^[A-Z]+\\.md$' }), Nullable(Type.String())) }),
        ...errors(400, 401),
      },
    },
  }, async (request) => {
    const agent = await core.agents.verifyGatewayToken(request.params.kind, request.params.id, bearerOf(request.headers));
    if (!agent) throw new UnauthorizedError('Not this agent\'s token', 'invalid_agent_token');
    return core.agentConfigs.workspace(agent);
  });
}
