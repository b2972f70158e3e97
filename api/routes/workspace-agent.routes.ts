import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Agent } from '../../core/db.ts';
import { NotFoundError } from '../../core/errors.ts';
import { toPublicAgent } from '../../core/services/agents.service.ts';
import type { WorkspaceAccess } from '../../core/services/workspaces.service.ts';
import { AgentView, errors, Id, Nullable, strict } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';
import { AgentConfig, CreateProvider, PatchProvider, ProviderView } from './providers.routes.ts';
import { Role, Slug, SlugParams } from './workspaces.routes.ts';

// A workspace's shared agent: members start, stop and chat with it (POST
// /api/chat with its agentId), viewers only read; owners and admins set its
// providers and config. Keys go in and never come out.

const ProviderParams = strict({ slug: Slug, id: Id });
const WorkspaceAgentView = Type.Object({
  ...AgentView.properties,
  workspaceId: Type.String(),
  /** The caller's role: what the UI offers them. */
  role: Role,
  members: Type.Object({
    total: Type.Integer(),
    /** Members the agent has confirmed in their current role; the rest are "provisioning". */
    provisioned: Type.Integer(),
    /** The memberProvisioning run's state, when one runs (null: nothing owed, or Temporal unreachable). */
    sync: Nullable(Type.Object({ status: Type.String(), attempts: Type.Integer(), lastError: Nullable(Type.String()) })),
  }),
});
const ConfigAnswer = Type.Object({ config: AgentConfig, restart: Type.Union([Type.Literal('scheduled'), Type.Literal('not_running')]) });

export async function workspaceAgentRoutes(fastify: FastifyInstance, { core, auth, control }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.addHook('preHandler', auth.requireUser);

  async function view(agent: Agent, access: WorkspaceAccess, userId: string) {
    const members = await core.workspaces.members(userId, access.workspace.slug);
    const sync = await core.memberControl.state(access.workspace.id);
    return {
      ...toPublicAgent(agent),
      temporalUrl: control.workflowUrl(agent),
      workspaceId: access.workspace.id,
      role: access.role,
      members: {
        total: members.length,
        provisioned: members.filter((m) => m.provisioned).length,
        sync: sync ? { status: sync.status, attempts: sync.attempts, lastError: sync.lastError } : null,
      },
    };
  }
  const restartIfRunning = async (workspaceId: string) => control.configChanged(await core.agents.findOwned('workspace', workspaceId));

  app.get('/api/workspaces/:slug/agent', {
    schema: { params: SlugParams, response: { 200: WorkspaceAgentView, ...errors(400, 401, 404, 410) } },
  }, async (request) => {
    const { access, agent } = await core.workspaceAgents.agentOf(request.user!.id, request.params.slug);
    if (!agent) throw new NotFoundError('Agent');
    return view(agent, access, request.user!.id);
  });

  app.post('/api/workspaces/:slug/agent/start', {
    schema: { params: SlugParams, response: { 200: WorkspaceAgentView, ...errors(400, 401, 403, 404, 409, 410, 429, 503) } },
  }, async (request) => {
    const { access } = await core.workspaceAgents.agentOf(request.user!.id, request.params.slug, 'member');
    const agent = await core.agents.getOrCreate('workspace', access.workspace.id);
    await control.ensureRunning(agent);
    // The members changed while it was stopped are pushed now that it answers.
    void core.memberControl.requestSync(access.workspace.id, 'agent started');
    return view(await core.agents.get(agent.id), access, request.user!.id);
  });

  app.post('/api/workspaces/:slug/agent/stop', {
    schema: { params: SlugParams, response: { 200: WorkspaceAgentView, ...errors(400, 401, 403, 404, 410, 503) } },
  }, async (request) => {
    const { access, agent } = await core.workspaceAgents.agentOf(request.user!.id, request.params.slug, 'member');
    if (!agent) throw new NotFoundError('Agent');
    await control.stop(agent, 'user_request');
    await core.audit.record({ actorId: request.user!.id, workspaceId: access.workspace.id, action: 'workspace.agent.stop', target: `agent:${agent.id}` });
    return view(await core.agents.get(agent.id), access, request.user!.id);
  });

  app.get('/api/workspaces/:slug/agent-config', {
    schema: { params: SlugParams, response: { 200: AgentConfig, ...errors(400, 401, 404, 410) } },
  }, (request) => core.workspaceAgents.getConfig(request.user!.id, request.params.slug));

  app.put('/api/workspaces/:slug/agent-config', {
    schema: { params: SlugParams, body: AgentConfig, response: { 200: ConfigAnswer, ...errors(400, 401, 403, 404, 410) } },
  }, async (request) => {
    const { config, workspaceId } = await core.workspaceAgents.putConfig(request.user!.id, request.params.slug, request.body);
    return { config, restart: await restartIfRunning(workspaceId) };
  });

  app.get('/api/workspaces/:slug/providers', {
    schema: { params: SlugParams, response: { 200: Type.Array(ProviderView), ...errors(400, 401, 403, 404, 410) } },
  }, (request) => core.workspaceAgents.listProviders(request.user!.id, request.params.slug));

  app.post('/api/workspaces/:slug/providers', {
    schema: { params: SlugParams, body: CreateProvider, response: { 201: ProviderView, ...errors(400, 401, 403, 404, 409, 410) } },
  }, async (request, reply) => {
    const { provider, workspaceId } = await core.workspaceAgents.createProvider(request.user!.id, request.params.slug, request.body);
    await restartIfRunning(workspaceId);
    return reply.code(201).send(provider);
  });

  app.patch('/api/workspaces/:slug/providers/:id', {
    schema: { params: ProviderParams, body: PatchProvider, response: { 200: ProviderView, ...errors(400, 401, 403, 404, 409, 410) } },
  }, async (request) => {
    const { provider, workspaceId } = await core.workspaceAgents.updateProvider(request.user!.id, request.params.slug, request.params.id, request.body);
    await restartIfRunning(workspaceId);
    return provider;
  });

  app.delete('/api/workspaces/:slug/providers/:id', {
    schema: { params: ProviderParams, response: { 204: Type.Null(), ...errors(400, 401, 403, 404, 409, 410) } },
  }, async (request, reply) => {
    const { workspaceId } = await core.workspaceAgents.removeProvider(request.user!.id, request.params.slug, request.params.id);
    await restartIfRunning(workspaceId);
    return reply.code(204).send(null);
  });
}
