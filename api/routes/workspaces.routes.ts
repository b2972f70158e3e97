import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { UpdateConfigSchema, UpdateConfigViewSchema } from '../../core/services/fleet-settings.service.ts';
import { errors, Id, Nullable, strict } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';

// Workspaces (API.md "Workspaces"): create, read, rename, archive; members and
// their roles; invitations by email. Rules live in the workspaces and invites
// services; every membership change is then pushed into the workspace agent
// by its memberProvisioning workflow (asked here, best effort).

export const Slug = Type.String({ minLength: 3, maxLength: 64, pattern: '^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$' });
export const SlugParams = strict({ slug: Slug });
const MemberParams = strict({ slug: Slug, userId: Id });
const InviteParams = strict({ slug: Slug, id: Id });
export const Role = Type.Union([Type.Literal('owner'), Type.Literal('admin'), Type.Literal('member'), Type.Literal('viewer')]);
const Name = Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\u0000-\\u001f\\u007f]+$' });

const WorkspaceView = Type.Object({
  id: Type.String(),
  slug: Type.String(),
  name: Type.String(),
  personal: Type.Boolean(),
  role: Role,
  archivedAt: Nullable(Type.String()),
  createdAt: Type.String(),
});
const MemberView = Type.Object({
  userId: Type.String(),
  email: Nullable(Type.String()),
  displayName: Type.String(),
  role: Role,
  joinedAt: Type.String(),
  invitedById: Nullable(Type.String()),
  provisioned: Type.Boolean(),
});
const InviteView = Type.Object({
  id: Type.String(),
  emailHint: Type.String(),
  role: Role,
  expiresAt: Type.String(),
  createdAt: Type.String(),
  invitedById: Nullable(Type.String()),
});
const Membership = Type.Object({
  workspace: Type.Object({ id: Type.String(), slug: Type.String(), name: Type.String() }),
  userId: Type.String(),
  role: Role,
  joinedAt: Type.String(),
});

export async function workspaceRoutes(fastify: FastifyInstance, { core, auth, control }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.addHook('preHandler', auth.requireUser);
  const sync = (workspaceId: string, reason: string) => void core.memberControl.requestSync(workspaceId, reason);

  app.post('/api/workspaces', {
    schema: { body: strict({ slug: Slug, name: Name }), response: { 201: WorkspaceView, ...errors(400, 401, 403, 409) } },
  }, async (request, reply) => reply.code(201).send(await core.workspaces.create(request.user!.id, request.body)));

  app.get('/api/workspaces', {
    schema: { response: { 200: Type.Array(WorkspaceView), ...errors(401) } },
  }, (request) => core.workspaces.list(request.user!.id));

  app.get('/api/workspaces/:slug', {
    schema: {
      params: SlugParams,
      // agentId: the shared agent, once someone started it (null before).
      response: { 200: Type.Object({ ...WorkspaceView.properties, memberCount: Type.Integer(), agentId: Nullable(Type.String()) }), ...errors(400, 401, 404, 410) },
    },
  }, async (request) => {
    const ws = await core.workspaces.get(request.user!.id, request.params.slug);
    return { ...ws, agentId: (await core.agents.findOwned('workspace', ws.id))?.id ?? null };
  });

  app.patch('/api/workspaces/:slug', {
    schema: { params: SlugParams, body: strict({ name: Name }), response: { 200: WorkspaceView, ...errors(400, 401, 403, 404, 410) } },
  }, (request) => core.workspaces.rename(request.user!.id, request.params.slug, request.body.name));

  app.post('/api/workspaces/:slug/archive', {
    schema: { params: SlugParams, response: { 200: WorkspaceView, ...errors(400, 401, 403, 404, 409, 410) } },
  }, async (request) => {
    const archived = await core.workspaces.archive(request.user!.id, request.params.slug);
    // Nobody may start or chat with it any more; a stop that fails now (Temporal down) is left to the idle reaper.
    const agent = await core.agents.findOwned('workspace', archived.id);
    if (agent && agent.status !== 'stopped') {
      await control.stop(agent, 'workspace_archived').catch((err: Error) => request.log.warn({ err }, 'archived workspace agent not stopped'));
    }
    return archived;
  });

  app.get('/api/workspaces/:slug/members', {
    schema: { params: SlugParams, response: { 200: Type.Array(MemberView), ...errors(400, 401, 404, 410) } },
  }, (request) => core.workspaces.members(request.user!.id, request.params.slug));

  app.put('/api/workspaces/:slug/members/:userId', {
    schema: { params: MemberParams, body: strict({ role: Role }), response: { 200: MemberView, ...errors(400, 401, 403, 404, 409, 410) } },
  }, async (request) => {
    const r = await core.workspaces.setRole(request.user!.id, request.params.slug, request.params.userId, request.body.role);
    if (r.changed) sync(r.workspaceId, 'role changed');
    return r.member;
  });

  app.delete('/api/workspaces/:slug/members/:userId', {
    schema: { params: MemberParams, response: { 204: Type.Null(), ...errors(400, 401, 403, 404, 409, 410) } },
  }, async (request, reply) => {
    const r = await core.workspaces.removeMember(request.user!.id, request.params.slug, request.params.userId);
    sync(r.workspaceId, 'member removed');
    return reply.code(204).send(null);
  });

  app.post('/api/workspaces/:slug/invites', {
    schema: {
      params: SlugParams,
      body: strict({ email: Type.String({ format: 'email', maxLength: 254 }), role: Role }),
      response: { 201: Type.Object({ ...InviteView.properties, token: Type.String(), mailed: Type.Boolean() }), ...errors(400, 401, 403, 404, 409, 410) },
    },
  }, async (request, reply) => reply.code(201).send(await core.invites.create(request.user!, request.params.slug, request.body)));

  app.get('/api/workspaces/:slug/invites', {
    schema: { params: SlugParams, response: { 200: Type.Array(InviteView), ...errors(400, 401, 403, 404, 410) } },
  }, (request) => core.invites.list(request.user!.id, request.params.slug));

  app.delete('/api/workspaces/:slug/invites/:id', {
    schema: { params: InviteParams, response: { 204: Type.Null(), ...errors(400, 401, 403, 404, 410) } },
  }, async (request, reply) => {
    await core.invites.revoke(request.user!.id, request.params.slug, request.params.id);
    return reply.code(204).send(null);
  });

  app.get('/api/me/invites', {
    schema: {
      response: {
        200: Type.Array(Type.Object({ id: Type.String(), workspace: Type.Object({ slug: Type.String(), name: Type.String() }), role: Role, expiresAt: Type.String() })),
        ...errors(401),
      },
    },
  }, (request) => core.invites.mine(request.user!));

  app.post('/api/invites/accept', {
    schema: {
      body: strict({ token: Type.String({ minLength: 16, maxLength: 128, pattern: '^[A-Za-z0-9_-]+$' }) }),
      response: { 200: Membership, ...errors(400, 401, 403, 404, 409, 410) },
    },
  }, async (request) => {
    const membership = await core.invites.accept(request.user!, request.body.token);
    sync(membership.workspace.id, 'member joined');
    return membership;
  });

  app.get('/api/workspaces/:slug/update-config', {
    schema: { params: SlugParams, response: { 200: UpdateConfigViewSchema, ...errors(400, 401, 403, 404, 410) } },
  }, async (request) => core.fleet.getUpdateConfig((await core.workspaces.access(request.user!.id, request.params.slug, 'admin')).workspace.id));

  app.put('/api/workspaces/:slug/update-config', {
    schema: { params: SlugParams, body: UpdateConfigSchema, response: { 200: UpdateConfigViewSchema, ...errors(400, 401, 403, 404, 410) } },
  }, async (request) => {
    const a = await core.workspaces.access(request.user!.id, request.params.slug, 'admin');
    const after = await core.fleet.putUpdateConfig(a.workspace.id, request.body);
    await core.audit.record({ actorId: request.user!.id, workspaceId: a.workspace.id, action: 'workspace.update_config', target: `workspace:${a.workspace.id}`, after });
    return after;
  });
}
