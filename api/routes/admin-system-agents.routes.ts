import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Agent } from '../../core/db.ts';
import { agentWorkflowId } from '../../core/contracts/agent.contract.ts';
import type { AgentConfigInput } from '../../core/services/agent-config.service.ts';
import { errors, IdParams, Nullable, strict } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';

// System agents after onboarding: listed, created (and started, always on)
// and removed by admins. Removal stops the agent through its lifecycle, ends
// that lifecycle, then deletes its row and config; the reconciler removes the
// stopped container (its agent is gone) and the volume stays for the
// operator (named in the audit entry), as nothing else in Hangar deletes data.

const SystemAgent = Type.Object({
  id: Type.String(),
  name: Type.String(),
  role: Nullable(Type.String()),
  providerId: Nullable(Type.String()),
  primaryModel: Nullable(Type.String()),
  status: Type.String(),
  statusReason: Nullable(Type.String()),
  image: Type.String(),
  imageDigest: Nullable(Type.String()),
  createdAt: Type.String(),
  workflowId: Type.String(),
  temporalUrl: Type.String(),
});

export async function adminSystemAgentRoutes(fastify: FastifyInstance, { core, auth, control }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.addHook('preHandler', auth.requireAdmin);

  const view = (agent: Agent, config: AgentConfigInput) => ({
    id: agent.id,
    name: agent.ownerId,
    role: config.personality,
    providerId: config.providerId,
    primaryModel: config.primaryModel,
    status: agent.status,
    statusReason: agent.statusReason,
    image: agent.image,
    imageDigest: agent.imageDigest,
    createdAt: agent.createdAt.toISOString(),
    workflowId: agentWorkflowId(agent.id),
    temporalUrl: control.workflowUrl(agent),
  });

  app.get('/api/admin/system-agents', {
    schema: { response: { 200: Type.Object({ data: Type.Array(SystemAgent) }), ...errors(401, 403) } },
  }, async () => ({ data: (await core.systemAgents.list()).map(({ agent, config }) => view(agent, config)) }));

  app.post('/api/admin/system-agents', {
    schema: {
      body: strict({
        // The same rules as the wizard's step.
        name: Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,40}$' }),
        role: Type.String({ minLength: 1, maxLength: 2000 }),
        providerId: Type.String({ minLength: 1, maxLength: 64 }),
        primaryModel: Type.String({ minLength: 1, maxLength: 300 }),
      }),
      response: { 201: SystemAgent, ...errors(400, 401, 403, 409) },
    },
  }, async (request, reply) => {
    const agent = await core.systemAgents.create(request.user!.id, request.body);
    const config = await core.agentConfigs.get('system', agent.ownerId);
    const after = view(agent, config);
    await core.audit.record({ actorId: request.user!.id, action: 'system_agent.create', target: `agent:${agent.id}`, after });
    // Always on: brought up now, without holding the answer (its status shows
    // the progress). Its errors, a refusal when too many agents are starting
    // included, are logged: the agent exists either way, as the audit says.
    void Promise.resolve()
      .then(() => control.ensureRunning(agent))
      .catch((err: unknown) => request.log.warn({ err, agentId: agent.id }, 'system agent did not start'));
    return reply.code(201).send(after);
  });

  app.delete('/api/admin/system-agents/:id', {
    schema: { params: IdParams, response: { 204: Type.Null(), ...errors(400, 401, 403, 404, 503) } },
  }, async (request, reply) => {
    const agent = await core.systemAgents.get(request.params.id);
    const before = view(agent, await core.agentConfigs.get('system', agent.ownerId));
    await control.retire(agent, 'system_agent_removed');
    await core.systemAgents.remove(agent);
    await core.audit.record({ actorId: request.user!.id, action: 'system_agent.remove', target: `agent:${agent.id}`, before: { ...before, volumeKept: agent.volumeName } });
    return reply.code(204).send(null);
  });
}
