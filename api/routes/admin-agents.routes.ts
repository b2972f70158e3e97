import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { asSystem, pageMeta, type Agent } from '../../core/db.ts';
import { errors, IdParams, Nullable } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';
import { storageView } from '../../core/services/agents.service.ts';
import { PageMeta, Paging } from './admin-users.routes.ts';

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
  workflowId: Type.String(),
  temporalUrl: Type.String(),
});

export async function adminAgentRoutes(fastify: FastifyInstance, { core, auth, control }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.addHook('preHandler', auth.requireAdmin);

  async function view(rows: Agent[]) {
    const userIds = rows.filter((a) => a.ownerKind === 'user').map((a) => a.ownerId);
    const users = await core.db.user.findMany({ where: { id: { in: userIds } }, select: { id: true, displayName: true } });
    const names = new Map(users.map((u) => [u.id, u.displayName]));
    return rows.map((a) => ({
      id: a.id,
      ownerKind: a.ownerKind,
      ownerId: a.ownerId,
      ownerName: a.ownerKind === 'user' ? (names.get(a.ownerId) ?? null) : a.ownerId,
      status: a.status,
      statusReason: a.statusReason,
      image: a.image,
      imageDigest: a.imageDigest,
      lastActiveAt: a.lastActiveAt?.toISOString() ?? null,
      dockerHostId: a.dockerHostId,
      ...storageView(a),
      storageCapBytes: core.config.agentStorageMb * 1024 * 1024,
      workflowId: `agent/${a.id}`,
      temporalUrl: control.workflowUrl(a),
    }));
  }

  app.get('/api/admin/agents', {
    schema: { querystring: Paging, response: { 200: Type.Object({ data: Type.Array(FleetAgent), meta: PageMeta }), ...errors(400, 401, 403) } },
  }, async (request) => {
    const { page, limit } = request.query;
    // Admins see every agent's status: declared system work, narrowed by the response schema.
    const [total, rows] = await asSystem(core.db, async (tx) => [
      await tx.agent.count(),
      await tx.agent.findMany({ orderBy: [{ createdAt: 'asc' }, { id: 'asc' }], skip: (page - 1) * limit, take: limit }),
    ] as const);
    return { data: await view(rows), meta: pageMeta(total, page, limit) };
  });

  const act = (action: 'stop' | 'restart') => async (request: { params: { id: string }; user: { id: string } | null }) => {
    const agent = await core.agents.get(request.params.id);
    if (action === 'stop') await control.stop(agent, 'admin_request');
    else await control.restart(agent, 'admin_request');
    const after = await core.agents.get(agent.id);
    await core.audit.record({ actorId: request.user!.id, action: `agent.${action}`, target: `agent:${agent.id}`, before: { status: agent.status }, after: { status: after.status } });
    return (await view([after]))[0];
  };
  const actionSchema = { params: IdParams, response: { 200: FleetAgent, ...errors(400, 401, 403, 404, 409, 429, 503) } };
  app.post('/api/admin/agents/:id/stop', { schema: actionSchema }, act('stop'));
  app.post('/api/admin/agents/:id/restart', { schema: actionSchema }, act('restart'));
}
