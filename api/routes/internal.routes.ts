import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { UnauthorizedError } from '../../core/errors.ts';
import { errors, Id, Nullable, strict } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';

const Params = strict({ kind: Type.Union(['user', 'workspace', 'system'].map((k) => Type.Literal(k))), id: Id });

export async function internalRoutes(fastify: FastifyInstance, { core }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

  // Agents only: the bearer must be the gateway token of the agent asked about.
  // Any other token gets the same 401, so nothing about the agent leaks.
  async function callingAgent(request: { headers: FastifyRequest['headers']; params: { kind: string; id: string } }) {
    const header = request.headers.authorization;
    const bearer = header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
    const agent = await core.agents.verifyGatewayToken(request.params.kind, request.params.id, bearer);
    if (!agent) throw new UnauthorizedError('Not this agent\'s token', 'invalid_agent_token');
    return agent;
  }

  // OpenClaw's openclaw.json, as is: the entrypoint writes it where
  // OPENCLAW_CONFIG_PATH points and the gateway validates it at start.
  // Open objects in the schema: OpenClaw owns the shape
  // (core/services/openclaw-config.service.ts builds it).
  app.get('/api/internal/agent-config/:kind/:id', {
    schema: {
      params: Params,
      response: {
        200: Type.Object({ gateway: Type.Unknown(), agents: Type.Unknown(), models: Type.Unknown() }, { additionalProperties: true }),
        ...errors(400, 401),
      },
    },
  }, async (request) => core.agentConfigs.runtimeConfig(await callingAgent(request)));

  // Workspace files Hangar owns (SOUL.md carries the personality); null: remove Hangar's copy.
  app.get('/api/internal/agent-config/:kind/:id/workspace', {
    schema: {
      params: Params,
      response: {
        200: strict({ files: Type.Record(Type.String({ pattern: '^[A-Z]+\\.md$' }), Nullable(Type.String())) }),
        ...errors(400, 401),
      },
    },
  }, async (request) => core.agentConfigs.workspace(await callingAgent(request)));
}
