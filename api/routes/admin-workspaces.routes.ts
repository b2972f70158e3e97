import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { pageMeta } from '../../core/db.ts';
import { UpdateConfigViewSchema } from '../../core/services/fleet-settings.service.ts';
import { errors, Nullable, strict } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';
import { PageMeta, Paging, paging } from './admin-users.routes.ts';
import { SlugParams } from './workspaces.routes.ts';

// Instance admins and tenants: every workspace (personal ones are tenants
// too) with how it takes fleet updates, and an override of its mode that wins
// over the workspace's own choice until lifted. Never members' data.

const AdminWorkspace = Type.Object({
  id: Type.String(),
  slug: Type.String(),
  name: Type.String(),
  personal: Type.Boolean(),
  memberCount: Type.Integer(),
  archivedAt: Nullable(Type.String()),
  createdAt: Type.String(),
  updateConfig: UpdateConfigViewSchema,
});

export async function adminWorkspaceRoutes(fastify: FastifyInstance, { core, auth }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.addHook('preHandler', auth.requireAdmin);

  app.get('/api/admin/workspaces', {
    schema: { querystring: Paging, response: { 200: Type.Object({ data: Type.Array(AdminWorkspace), meta: PageMeta }), ...errors(400, 401, 403) } },
  }, async (request) => {
    const { page, limit } = paging(request.query);
    const { total, rows } = await core.workspaces.listForAdmin(page, limit);
    const data = [];
    for (const w of rows) {
      data.push({
        id: w.id,
        slug: w.slug,
        name: w.name,
        personal: w.personalOwnerId !== null,
        memberCount: w._count.members,
        archivedAt: w.archivedAt?.toISOString() ?? null,
        createdAt: w.createdAt.toISOString(),
        updateConfig: await core.fleet.getUpdateConfig(w.id),
      });
    }
    return { data, meta: pageMeta(total, page, limit) };
  });

  app.put('/api/admin/workspaces/:slug/update-override', {
    schema: {
      params: SlugParams,
      body: strict({ mode: Type.Union([Type.Literal('auto'), Type.Literal('manual'), Type.Null()]) }),
      response: { 200: UpdateConfigViewSchema, ...errors(400, 401, 403, 404) },
    },
  }, async (request) => {
    const ws = await core.workspaces.bySlugForAdmin(request.params.slug);
    const before = await core.fleet.getUpdateConfig(ws.id);
    const after = await core.fleet.setModeOverride(ws.id, request.body.mode);
    await core.audit.record({ actorId: request.user!.id, workspaceId: ws.id, action: 'workspace.update_override', target: `workspace:${ws.id}`, before, after });
    return after;
  });
}
