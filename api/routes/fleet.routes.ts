import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { pageMeta } from '../../core/db.ts';
import { syncImagePollers } from '../../core/control/schedules.ts';
import { FleetSettingsSchema, ImageRef, StrategySchema } from '../../core/services/fleet-settings.service.ts';
import { errors, Id, IdParams, Nullable, strict } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';
import { PageMeta, Paging, paging } from './admin-users.routes.ts';

// Fleet updates for admins (API.md "Fleet"): settings, rollouts and the event trail.

const L = Type.Literal;
const AgentUpdateStatus = Type.Union([
  L('pending'), L('waiting_window'), L('updating'), L('updated'), L('rolled_back'), L('skipped'), L('failed'), L('update_available'),
]);
const RolloutView = Type.Object({
  id: Type.String(),
  workflowId: Type.String(),
  temporalUrl: Type.String(),
  trigger: Type.String(),
  image: Type.String(),
  fromDigest: Nullable(Type.String()),
  toDigest: Type.String(),
  strategy: Type.Record(Type.String(), Type.Unknown()),
  status: Type.Union([L('pending'), L('running'), L('paused'), L('completed'), L('aborted'), L('failed')]),
  reason: Nullable(Type.String()),
  changelog: Nullable(Type.String()),
  waves: Type.Array(Type.Object({
    index: Type.Integer(),
    agentIds: Type.Array(Type.String()),
    status: Type.String(),
    notBefore: Type.Optional(Type.String()),
    startedAt: Type.Optional(Type.String()),
    finishedAt: Type.Optional(Type.String()),
  })),
  agents: Type.Array(Type.Object({
    agentId: Type.String(),
    status: AgentUpdateStatus,
    error: Type.Optional(Type.String()),
    startedAt: Type.Optional(Type.String()),
    finishedAt: Type.Optional(Type.String()),
  })),
  counts: Type.Record(Type.String(), Type.Integer()),
  startedById: Nullable(Type.String()),
  createdAt: Type.String(),
  finishedAt: Nullable(Type.String()),
});
const FleetEvent = Type.Object({
  id: Type.String(),
  type: Type.String(),
  agentId: Nullable(Type.String()),
  rolloutId: Nullable(Type.String()),
  payload: Type.Record(Type.String(), Type.Unknown()),
  at: Type.String(),
});

export async function fleetRoutes(fastify: FastifyInstance, { core, auth, rolloutControl }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.addHook('preHandler', auth.requireAdmin);
  const withUrl = <T extends { workflowId: string }>(r: T) => ({ ...r, temporalUrl: rolloutControl.workflowUrl(r.workflowId) });

  app.get('/api/admin/fleet/settings', { schema: { response: { 200: FleetSettingsSchema, ...errors(401, 403) } } }, () => core.fleet.get());

  app.put('/api/admin/fleet/settings', {
    schema: { body: FleetSettingsSchema, response: { 200: FleetSettingsSchema, ...errors(400, 401, 403, 503) } },
  }, async (request) => {
    const before = await core.fleet.get();
    const saved = await core.fleet.put(request.body);
    await core.audit.record({ actorId: request.user!.id, action: 'fleet.settings', target: 'fleet', before, after: saved });
    // Pollers follow the channels; running rollouts look at the mode again now.
    await syncImagePollers(core.temporal, saved, { healthPollMs: core.config.updateHealthPollMs });
    await rolloutControl.settingsChanged();
    return saved;
  });

  app.post('/api/admin/rollouts', {
    schema: {
      body: strict({
        image: ImageRef,
        /** A chosen digest of the image (an earlier one, to go back); default: the image's digest now. */
        toDigest: Type.Optional(Type.String({ pattern: '^sha256:[a-f0-9]{64}$' })),
        strategy: Type.Optional(Type.Partial(StrategySchema, { additionalProperties: false })),
        agentIds: Type.Optional(Type.Array(Id, { minItems: 1, maxItems: 1000, uniqueItems: true })),
        ignoreWindows: Type.Optional(Type.Boolean()),
      }),
      response: { 201: Type.Object({ id: Type.String(), workflowId: Type.String(), temporalUrl: Type.String() }), ...errors(400, 401, 403, 409, 503) },
    },
  }, async (request, reply) => {
    const started = await rolloutControl.start({ ...request.body, trigger: 'admin', startedById: request.user!.id });
    await core.audit.record({ actorId: request.user!.id, action: 'rollout.start', target: `rollout:${started.id}`, after: request.body });
    return reply.code(201).send(withUrl(started));
  });

  app.get('/api/admin/rollouts', {
    schema: { querystring: Paging, response: { 200: Type.Object({ data: Type.Array(RolloutView), meta: PageMeta }), ...errors(400, 401, 403) } },
  }, async (request) => {
    const { page, limit } = paging(request.query);
    const { total, rows } = await core.rollouts.list(page, limit);
    return { data: rows.map(withUrl), meta: pageMeta(total, page, limit) };
  });

  app.get('/api/admin/rollouts/:id', {
    schema: { params: IdParams, response: { 200: RolloutView, ...errors(400, 401, 403, 404) } },
  }, async (request) => withUrl(await core.rollouts.get(request.params.id)));

  for (const action of ['pause', 'resume', 'abort'] as const) {
    app.post(`/api/admin/rollouts/:id/${action}`, {
      // The body is optional: no body reads as {} and is still checked for unknown fields.
      preValidation: async (request) => void (request.body ??= {}),
      schema: {
        params: IdParams,
        body: strict({ reason: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) }),
        response: { 200: RolloutView, ...errors(400, 401, 403, 404, 409, 503) },
      },
    }, async (request) => {
      const r = await rolloutControl.signal(request.params.id, action, request.body.reason);
      await core.audit.record({ actorId: request.user!.id, action: `rollout.${action}`, target: `rollout:${r.id}`, before: { status: r.status } });
      return withUrl(await core.rollouts.get(r.id));
    });
  }

  app.get('/api/admin/fleet/events', {
    schema: {
      querystring: strict({
        ...Paging.properties,
        rolloutId: Type.Optional(Id),
        agentId: Type.Optional(Id),
        type: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z_.]+$' })),
      }),
      response: { 200: Type.Object({ data: Type.Array(FleetEvent), meta: PageMeta }), ...errors(400, 401, 403) },
    },
  }, async (request) => {
    const { page, limit } = paging(request.query);
    const { total, rows } = await core.rollouts.listEvents({ ...request.query, page, limit });
    return { data: rows, meta: pageMeta(total, page, limit) };
  });
}
