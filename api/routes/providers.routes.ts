import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { PROVIDER_TYPES, toPublicProvider } from '../../core/services/providers.service.ts';
import { errors, IdParams, Nullable, strict } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';

const Model = strict({
  id: Type.String({ minLength: 1, maxLength: 200 }),
  name: Type.Optional(Type.String({ maxLength: 200 })),
  contextWindow: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000_000 })),
  maxTokens: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000_000 })),
});

const fields = {
  name: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' }),
  displayName: Type.String({ minLength: 1, maxLength: 100 }),
  type: Type.Union(PROVIDER_TYPES.map((t) => Type.Literal(t))),
  baseUrl: Type.String({ maxLength: 2000, pattern: '^https?://[^\\s]+$' }),
  apiKey: Type.String({ minLength: 1, maxLength: 4096, pattern: '^[\\x21-\\x7e]+$' }),
  apiType: Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z0-9-]+$' }),
  models: Type.Array(Model, { maxItems: 200 }),
};

export const CreateProvider = strict({
  name: fields.name,
  displayName: fields.displayName,
  type: fields.type,
  baseUrl: Type.Optional(fields.baseUrl),
  apiKey: Type.Optional(fields.apiKey),
  apiType: Type.Optional(fields.apiType),
  models: Type.Optional(fields.models),
});
export const PatchProvider = Type.Partial(CreateProvider, { additionalProperties: false, minProperties: 1 });

export const ProviderView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  displayName: Type.String(),
  type: Type.String(),
  baseUrl: Nullable(Type.String()),
  apiType: Nullable(Type.String()),
  models: Type.Array(Type.Object({ id: Type.String(), name: Type.Optional(Type.String()), contextWindow: Type.Optional(Type.Integer()), maxTokens: Type.Optional(Type.Integer()) })),
  isActive: Type.Boolean(),
  hasApiKey: Type.Boolean(),
  apiKeyLast4: Nullable(Type.String()),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});

export const AgentConfig = strict({
  primaryModel: Nullable(Type.String({ minLength: 1, maxLength: 300 })),
  fallbackModels: Type.Array(Type.String({ minLength: 1, maxLength: 300 }), { maxItems: 10 }),
  personality: Nullable(Type.String({ maxLength: 20_000 })),
  providerId: Nullable(Type.String({ minLength: 1, maxLength: 64 })),
});

export async function providerRoutes(fastify: FastifyInstance, { core, auth, control }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.addHook('preHandler', auth.requireUser);
  const view = (p: Parameters<typeof toPublicProvider>[0]) => toPublicProvider(p, core.keyring);
  const restartIfRunning = async (userId: string) => control.configChanged(await core.agents.findOwned('user', userId));

  app.get('/api/me/providers', { schema: { response: { 200: Type.Array(ProviderView), ...errors(401) } } }, async (request) =>
    (await core.providers.list(request.user!.id)).map(view));

  app.post('/api/me/providers', {
    schema: { body: CreateProvider, response: { 201: ProviderView, ...errors(400, 401, 403, 409) } },
  }, async (request, reply) => {
    const p = await core.providers.create(request.user!.id, request.body);
    await restartIfRunning(request.user!.id);
    return reply.code(201).send(view(p));
  });

  app.patch('/api/me/providers/:id', {
    schema: { params: IdParams, body: PatchProvider, response: { 200: ProviderView, ...errors(400, 401, 403, 404, 409) } },
  }, async (request) => {
    const p = await core.providers.update(request.user!.id, request.params.id, request.body);
    await restartIfRunning(request.user!.id);
    return view(p);
  });

  app.delete('/api/me/providers/:id', {
    schema: { params: IdParams, response: { 204: Type.Null(), ...errors(400, 401, 403, 404, 409) } },
  }, async (request, reply) => {
    await core.providers.remove(request.user!.id, request.params.id);
    await restartIfRunning(request.user!.id);
    return reply.code(204).send(null);
  });

  app.post('/api/me/providers/:id/test', {
    schema: {
      params: IdParams,
      response: { 200: Type.Object({ ok: Type.Boolean(), latencyMs: Type.Integer(), error: Type.Optional(Type.String()) }), ...errors(400, 401, 403, 404) },
    },
  }, async (request) => core.providers.test(request.user!.id, request.params.id));

  app.get('/api/me/agent-config', { schema: { response: { 200: AgentConfig, ...errors(401) } } }, async (request) =>
    core.agentConfigs.get('user', request.user!.id));

  app.put('/api/me/agent-config', {
    schema: {
      body: AgentConfig,
      response: { 200: Type.Object({ config: AgentConfig, restart: Type.Union([Type.Literal('scheduled'), Type.Literal('not_running')]) }), ...errors(400, 401, 403) },
    },
  }, async (request) => {
    const config = await core.agentConfigs.put(request.user!.id, request.body);
    return { config, restart: await restartIfRunning(request.user!.id) };
  });
}
