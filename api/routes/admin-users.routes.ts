import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { User } from '../../core/db.ts';
import { ConflictError } from '../../core/errors.ts';
import { toPublicAgent } from '../../core/services/agents.service.ts';
import { TOKEN_SCOPES, toAdminUserView, toTokenView, type TokenScope } from '../../core/services/users.service.ts';
import { AgentView, errors, Id, IdParams, Nullable, PublicUser, strict } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';

const AdminUser = Type.Object({
  ...PublicUser.properties,
  status: Type.String(),
  createdAt: Type.String(),
  deactivatedAt: Nullable(Type.String()),
  suspendedAt: Nullable(Type.String()),
});
const TokenView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  prefix: Type.String(),
  scopes: Type.Array(Type.String()),
  createdAt: Type.String(),
  lastUsedAt: Nullable(Type.String()),
  expiresAt: Nullable(Type.String()),
  revokedAt: Nullable(Type.String()),
});
const AuditEntry = Type.Object({
  id: Type.String(),
  at: Type.String(),
  actorId: Nullable(Type.String()),
  actorName: Nullable(Type.String()),
  action: Type.String(),
  target: Type.String(),
  before: Type.Unknown(),
  after: Type.Unknown(),
});
const UserDetail = Type.Object({
  user: AdminUser,
  agent: Nullable(AgentView),
  tokens: Type.Array(TokenView),
  audit: Type.Array(AuditEntry),
});
const TokenParams = Type.Object({ id: Id, tokenId: Id }, { additionalProperties: false });

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

  app.get('/api/admin/users/:id', {
    schema: { params: IdParams, response: { 200: UserDetail, ...errors(400, 401, 403, 404) } },
  }, async (request) => {
    const user = await core.users.get(request.params.id);
    const [agent, tokens, audit] = await Promise.all([core.agents.findOwned('user', user.id), core.users.allTokens(user.id), core.audit.about(user.id)]);
    return {
      user: toAdminUserView(user),
      agent: agent ? { ...toPublicAgent(agent), temporalUrl: control.workflowUrl(agent) } : null,
      tokens: tokens.map(toTokenView),
      audit,
    };
  });

  // Temporary and reversible: sessions end, tokens are refused until reactivation, the agent stops, nothing is deleted.
  app.post('/api/admin/users/:id/suspend', {
    schema: { params: IdParams, response: { 200: AdminUser, ...errors(400, 401, 403, 404, 409) } },
  }, async (request) => {
    const change = await core.users.suspend(request.user!.id, request.params.id);
    live.closeUser(change.after.id);
    if (change.before.status === change.after.status) return toAdminUserView(change.after);
    const after = await audited(request.user!.id, 'user.suspend', change);
    const agent = await core.agents.findOwned('user', after.id);
    if (agent) await control.stop(agent, 'owner_suspended').catch((err) => request.log.warn({ err }, 'could not stop agent of suspended user'));
    return after;
  });

  app.post('/api/admin/users/:id/reactivate', {
    schema: { params: IdParams, response: { 200: AdminUser, ...errors(400, 401, 403, 404, 409) } },
  }, async (request) => {
    const change = await core.users.reactivate(request.params.id);
    if (change.before.status === change.after.status) return toAdminUserView(change.after);
    return audited(request.user!.id, 'user.reactivate', change);
  });

  // A scoped API token for someone else (automation on their behalf): shown once, audited, never the secret.
  app.post('/api/admin/users/:id/tokens', {
    schema: {
      params: IdParams,
      body: strict({
        name: Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\u0000-\\u001f]+$' }),
        scopes: Type.Array(Type.Union(TOKEN_SCOPES.map((sc) => Type.Literal(sc))), { minItems: 1, maxItems: 5 }),
        expiresInDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650 })),
      }),
      response: {
        201: Type.Object({ id: Type.String(), name: Type.String(), prefix: Type.String(), token: Type.String(), scopes: Type.Array(Type.String()), expiresAt: Nullable(Type.String()) }),
        ...errors(400, 401, 403, 404, 409),
      },
    },
  }, async (request, reply) => {
    const user = await core.users.get(request.params.id);
    if (user.status !== 'active') throw new ConflictError(`This user is ${user.status}: their tokens would not work`, 'user_not_active');
    const t = await core.users.createToken(user.id, request.body.name, request.body.expiresInDays, request.body.scopes as TokenScope[]);
    const expiresAt = t.expiresAt?.toISOString() ?? null;
    await core.audit.record({ actorId: request.user!.id, action: 'token.issue', target: `user:${user.id}`, after: { tokenId: t.id, name: t.name, prefix: t.prefix, scopes: t.scopes, expiresAt } });
    return reply.code(201).send({ ...t, expiresAt });
  });

  app.delete('/api/admin/users/:id/tokens/:tokenId', {
    schema: { params: TokenParams, response: { 204: Type.Null(), ...errors(400, 401, 403, 404) } },
  }, async (request, reply) => {
    const t = await core.users.revokeTokenOf(request.params.id, request.params.tokenId);
    await core.audit.record({ actorId: request.user!.id, action: 'token.revoke', target: `user:${request.params.id}`, before: toTokenView(t) });
    return reply.code(204).send(null);
  });

  app.post('/api/admin/users/:id/password-reset', {
    schema: {
      params: IdParams,
      response: { 202: Type.Object({ sentTo: Type.String(), expiresAt: Type.String() }), ...errors(400, 401, 403, 404, 409) },
    },
  }, async (request, reply) => {
    const user = await core.users.get(request.params.id);
    const sent = await core.passwordResets.send(user);
    const view = { sentTo: sent.sentTo, expiresAt: sent.expiresAt.toISOString() };
    await core.audit.record({ actorId: request.user!.id, action: 'user.password_reset_sent', target: `user:${user.id}`, after: view });
    return reply.code(202).send(view);
  });
}
