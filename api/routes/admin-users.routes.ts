import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { User } from '../../core/db.ts';
import { toAdminUserView } from '../../core/services/users.service.ts';
import { errors, IdParams, Nullable, PublicUser, strict } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';

const AdminUser = Type.Object({
  ...PublicUser.properties,
  status: Type.String(),
  createdAt: Type.String(),
  deactivatedAt: Nullable(Type.String()),
});

// Optional in the published contract (a client may leave them out); the
// validator fills in the defaults, and `paging()` says so to the type checker.
export const Paging = strict({
  page: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, default: 1 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
});
export const paging = (q: { page?: number; limit?: number }) => ({ page: q.page ?? 1, limit: q.limit ?? 50 });
export const PageMeta = Type.Object({ total: Type.Integer(), page: Type.Integer(), limit: Type.Integer(), totalPages: Type.Integer() });

const Role = Type.Union([Type.Literal('admin'), Type.Literal('member')]);
const DisplayName = Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\u0000-\\u001f\\u007f]+$' });

export async function adminUserRoutes(fastify: FastifyInstance, { core, auth, control, live }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.addHook('preHandler', auth.requireAdmin);

  /** Writes the audit row for a change and answers with the admin view of its result. */
  async function audited(actorId: string, action: string, change: { before: User; after: User }) {
    const after = toAdminUserView(change.after);
    await core.audit.record({ actorId, action, target: `user:${after.id}`, before: toAdminUserView(change.before), after });
    return after;
  }

  app.get('/api/admin/users', {
    schema: { querystring: Paging, response: { 200: Type.Object({ data: Type.Array(AdminUser), meta: PageMeta }), ...errors(400, 401, 403) } },
  }, async (request) => {
    const { page, limit } = paging(request.query);
    const { data, meta } = await core.users.list(page, limit);
    return { data: data.map(toAdminUserView), meta };
  });

  app.post('/api/admin/users', {
    schema: {
      body: strict({
        email: Type.String({ format: 'email', maxLength: 254 }),
        displayName: DisplayName,
        role: Role,
        password: Type.Optional(Type.String({ minLength: 12, maxLength: 1024 })),
      }),
      response: { 201: AdminUser, ...errors(400, 401, 403, 409) },
    },
  }, async (request, reply) => {
    const user = await core.users.create({ ...request.body, invitedById: request.user!.id });
    await core.audit.record({ actorId: request.user!.id, action: 'user.create', target: `user:${user.id}`, after: toAdminUserView(user) });
    return reply.code(201).send(toAdminUserView(user));
  });

  app.patch('/api/admin/users/:id', {
    schema: {
      params: IdParams,
      body: Type.Object({ displayName: Type.Optional(DisplayName), role: Type.Optional(Role) }, { additionalProperties: false, minProperties: 1 }),
      response: { 200: AdminUser, ...errors(400, 401, 403, 404, 409) },
    },
  }, async (request) => {
    const change = await core.users.update(request.user!.id, request.params.id, request.body);
    return audited(request.user!.id, 'user.update', change);
  });

  app.post('/api/admin/users/:id/deactivate', {
    schema: { params: IdParams, response: { 200: AdminUser, ...errors(400, 401, 403, 404, 409) } },
  }, async (request) => {
    const change = await core.users.deactivate(request.user!.id, request.params.id);
    // Their live streams and in-flight chats on this process end now, not when they finish.
    live.closeUser(change.after.id);
    const after = await audited(request.user!.id, 'user.deactivate', change);
    // Their agent stops too; the lifecycle does it, so it never races a start.
    const agent = await core.agents.findOwned('user', after.id);
    if (agent) await control.stop(agent, 'owner_deactivated').catch((err) => request.log.warn({ err }, 'could not stop agent of deactivated user'));
    return after;
  });
}
