import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { pageMeta, type Agent } from '../../core/db.ts';
import { errors, IdParams, Nullable } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';
import { storageView } from '../../core/services/agents.service.ts';
import { PageMeta, Paging, paging } from './admin-users.routes.ts';

// The fleet as admins see it: status and storage only, never config, keys, chats or memory.
const FleetAgent = Type.Object({
  id: Type.String(),
  ownerKind: Type.String(),
  ownerId: Type.String(),
  ownerName: Nullable(Type.String()),
  status: Type.String(),
  statusReason: Nullable(Type.String()),
  image: Type.String(),
  imageDigest: Nullable(Type.String()),
  lastActiveAt: Nullable(Type.String()),
  dockerHostId: Type.String(),
  /** Bytes in the agent's volume at the last measurement (fleet-reconcile); null until measured. */
  storageBytes: Nullable(Type.Number()),
  storageMeasuredAt: Nullable(Type.String()),
  /** The cap (HANGAR_AGENT_STORAGE_MB): over it the agent is stopped and its starts refused. */
  storageCapBytes: Type.Number(),
  /** Failed health checks in a row (fleet-reconcile); at HANGAR_HEALTH_FAILURES_BEFORE_RESTART the agent is restarted. */
  healthFailures: Type.Integer({ minimum: 0 }),
  workflowId: Type.String(),
  temporalUrl: Type.String(),
  /** The update mode of the agent's tenant (its workspace's update config, else auto), and its preferred hour. */
  updateMode: Type.Union([Type.Literal('auto'), Type.Literal('manual')]),
  preferredHourUtc: Nullable(Type.Integer()),
  updateAvailable: Type.Boolean(),
});

export async function adminAgentRoutes(fastify: FastifyInstance, { core, auth, control }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.addHook('preHandler', auth.requireAdmin);

  type UpdateConfigs = Awaited<ReturnType<typeof core.rollouts.updateConfigsFor>>;
  function view({ agent: a, ownerName }: { agent: Agent; ownerName: string | null }, updates: UpdateConfigs) {
    const update = updates.get(a.id) ?? { mode: 'auto' as const, preferredHourUtc: null };
    return {
      id: a.id,
      ownerKind: a.ownerKind,
      ownerId: a.ownerId,
      ownerName,
      status: a.status,
      statusReason: a.statusReason,
      image: a.image,
      imageDigest: a.imageDigest,
      lastActiveAt: a.lastActiveAt?.toISOString() ?? null,
      dockerHostId: a.dockerHostId,
      ...storageView(a),
      storageCapBytes: core.config.agentStorageMb * 1024 * 1024,
      healthFailures: a.healthFailures,
      workflowId: `agent/${a.id}`,
      temporalUrl: control.workflowUrl(a),
      updateMode: update.mode,
      preferredHourUtc: update.preferredHourUtc,
      updateAvailable: a.updateAvailable,
    };
  }

  app.get('/api/admin/agents', {
    schema: { querystring: Paging, response: { 200: Type.Object({ data: Type.Array(FleetAgent), meta: PageMeta }), ...errors(400, 401, 403) } },
  }, async (request) => {
    const { page, limit } = paging(request.query);
    const { total, rows } = await core.agents.listForAdmin(page, limit);
    const updates = await core.rollouts.updateConfigsFor(rows.map((r) => r.agent));
    return { data: rows.map((r) => view(r, updates)), meta: pageMeta(total, page, limit) };
  });

  const act = (action: 'stop' | 'restart') => async (request: { params: { id: string }; user: { id: string } | null }) => {
    const agent = await core.agents.get(request.params.id);
    if (action === 'stop') await control.stop(agent, 'admin_request');
    else await control.restart(agent, 'admin_request');
    const after = await core.agents.get(agent.id);
    await core.audit.record({ actorId: request.user!.id, action: `agent.${action}`, target: `agent:${agent.id}`, before: { status: agent.status }, after: { status: after.status } });
    const { rows } = await core.agents.listForAdmin(1, 1, after.id);
    return view(rows[0], await core.rollouts.updateConfigsFor([after]));
  };
  const actionSchema = { params: IdParams, response: { 200: FleetAgent, ...errors(400, 401, 403, 404, 409, 429, 503) } };
  app.post('/api/admin/agents/:id/stop', { schema: actionSchema }, act('stop'));
  app.post('/api/admin/agents/:id/restart', { schema: actionSchema }, act('restart'));
}
