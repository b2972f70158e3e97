import type { FastifyInstance, FastifyReply } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Agent } from '../../core/db.ts';
import { AppError, NotFoundError } from '../../core/errors.ts';
import { toPublicAgent } from '../../core/services/agents.service.ts';
import { AgentView, errors, strict } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';

export async function agentRoutes(fastify: FastifyInstance, { core, auth, control }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.addHook('preHandler', auth.requireUser);

  const view = (a: Agent) => ({ ...toPublicAgent(a), temporalUrl: control.workflowUrl(a) });
  async function mine(userId: string): Promise<Agent> {
    const a = await core.agents.findOwned('user', userId);
    if (!a) throw new NotFoundError('Agent');
    return a;
  }

  app.get('/api/me/agent', { schema: { response: { 200: AgentView, ...errors(401, 404) } } }, async (request) =>
    view(await mine(request.user!.id)));

  app.post('/api/me/agent/start', {
    schema: { response: { 200: AgentView, ...errors(401, 403, 409, 429, 503) } },
  }, async (request, reply) => {
    const agent = await core.agents.getOrCreate('user', request.user!.id);
    if (!String(request.headers.accept ?? '').includes('text/event-stream')) {
      await control.ensureRunning(agent);
      return view(await core.agents.get(agent.id));
    }
    return streamStart(reply, agent);
  });

  /** Start progress as server-sent events: queued (with its position, while starts are capped), creating, starting, waiting_for_health, ready. */
  async function streamStart(reply: FastifyReply, agent: Agent) {
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const send = (event: string, data: unknown) => raw.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    try {
      await control.ensureRunningWithProgress(agent, (phase, position) => send('progress', position === undefined ? { phase } : { phase, position }));
      send('ready', view(await core.agents.get(agent.id)));
    } catch (err) {
      const e = err instanceof AppError ? err : null;
      send('error', { error: { code: e?.code ?? 'internal_error', message: e?.message ?? 'The agent could not start' } });
    }
    raw.end();
  }

  app.post('/api/me/agent/stop', { schema: { response: { 200: AgentView, ...errors(401, 403, 404, 503) } } }, async (request) => {
    const agent = await mine(request.user!.id);
    await control.stop(agent, 'user_request');
    return view(await core.agents.get(agent.id));
  });

  app.post('/api/me/agent/restart', { schema: { response: { 200: AgentView, ...errors(401, 403, 404, 409, 429, 503) } } }, async (request) => {
    const agent = await mine(request.user!.id);
    await control.restart(agent, 'user_request');
    return view(await core.agents.get(agent.id));
  });

  app.patch('/api/me/agent', {
    schema: {
      body: strict({ idleTimeoutMin: Type.Integer({ minimum: 1, maximum: 1440 }) }),
      response: { 200: AgentView, ...errors(400, 401, 403, 404) },
    },
  }, async (request) => {
    const agent = await core.agents.getOrCreate('user', request.user!.id);
    return view(await core.agents.setIdleTimeout(agent.id, request.body.idleTimeoutMin));
  });
}
