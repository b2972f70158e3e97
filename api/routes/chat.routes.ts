import http from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Agent, User } from '../../core/db.ts';
import { AppError, NotFoundError, RateLimitedError, UnauthorizedError, UnavailableError } from '../../core/errors.ts';
import { errors, strict } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';

const Message = strict({
  role: Type.Union(['system', 'user', 'assistant'].map((r) => Type.Literal(r))),
  content: Type.String({ maxLength: 200_000 }),
});
const ChatBody = strict({
  messages: Type.Array(Message, { minItems: 1, maxItems: 500 }),
  model: Type.Optional(Type.String({ minLength: 1, maxLength: 300 })),
  stream: Type.Optional(Type.Boolean()),
  agentId: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  sessionId: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' })),
});

/** Kept-alive connections to agents: the proxy is on every chat's path. */
const agentConnections = new http.Agent({ keepAlive: true, maxSockets: 64 });

/**
 * One request to an agent. node:http rather than fetch: the answer is piped to
 * the client as the agent writes it, without a web-stream conversion on the way.
 */
function send(port: number, path: string, method: string, headers: Record<string, string>, body?: string, signal?: AbortSignal): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent: agentConnections, signal }, resolve);
    req.on('error', reject);
    req.end(body);
  });
}

const deactivatedMidway = () => new UnauthorizedError('This account was deactivated', 'account_deactivated');

/** At most one lastActiveAt write per agent per window: chat traffic must not hammer the DB. */
const ACTIVITY_WRITE_MS = 5000;

export async function chatRoutes(fastify: FastifyInstance, { core, auth, control, live }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  // Identified on arrival, so the per-user chat limit below can refuse a
  // request before its (up to 4 MB) body is read, let alone parsed.
  app.addHook('onRequest', auth.requireUser);
  const perMinute = core.config.chatRatePerMin;
  const lastWrite = new Map<string, number>();

  function touch(agentId: string) {
    const now = Date.now();
    if (now - (lastWrite.get(agentId) ?? 0) < ACTIVITY_WRITE_MS) return;
    lastWrite.set(agentId, now);
    void core.agents.touch(agentId).catch(() => lastWrite.delete(agentId));
  }

  async function callerAgent(user: User, agentId?: string): Promise<Agent> {
    if (agentId) {
      // Workspace agents come with workspaces; until then only your own agent exists for you.
      const own = await core.agents.findOwned('user', user.id);
      if (!own || own.id !== agentId) throw new NotFoundError('Agent');
      return own;
    }
    return core.agents.getOrCreate('user', user.id);
  }

  /**
   * Routes from the database while the agent runs, so chat keeps working when
   * Temporal is down; only a start needs the workflow.
   */
  async function forward(agent: Agent, user: User, path: string, init: { method: string; body?: string; sessionId?: string; signal: AbortSignal }) {
    let row = agent;
    for (let attempt = 0; attempt < 2; attempt++) {
      if (init.signal.aborted) throw deactivatedMidway();
      if (row.status !== 'running' || !row.gatewayPort) {
        await control.ensureRunning(row);
        row = await core.agents.get(row.id);
      }
      try {
        // Built from scratch: nothing the caller sent under x-hangar-user-* can pass through.
        const headers: Record<string, string> = {
          authorization: `Bearer ${core.agents.gatewayToken(row)}`,
          'x-hangar-user-id': user.id,
          'x-hangar-user-name': encodeURIComponent(user.displayName),
        };
        if (init.body) headers['content-type'] = 'application/json';
        if (init.sessionId) headers['x-hangar-session-id'] = init.sessionId;
        return await send(row.gatewayPort!, path, init.method, headers, init.body, init.signal);
      } catch (err) {
        if (init.signal.aborted) throw deactivatedMidway();
        // Connection refused: the container died under us. Ask the lifecycle once, then give up.
        if (attempt === 1) throw new UnavailableError(`The agent is not answering (${(err as Error).message})`, 'agent_unreachable');
        row = { ...row, status: 'error' };
      }
    }
    throw new UnavailableError('The agent is not answering', 'agent_unreachable');
  }

  app.post('/api/chat', {
    bodyLimit: 4 * 1024 * 1024,
    config: {
      // Per user (however many sessions or tokens they use), in memory per API
      // process: a Map lookup on the hot path. Each chat writes history to the
      // agent's volume, so this is also the first wall against filling a disk.
      rateLimit: {
        max: perMinute,
        timeWindow: 60_000,
        hook: 'preParsing',
        keyGenerator: (request) => `chat:${request.user!.id}`,
        errorResponseBuilder: (_request, ctx) => {
          const seconds = Math.max(1, Math.ceil(ctx.ttl / 1000));
          return new RateLimitedError(`Too many chat requests: at most ${perMinute} a minute; try again in ${seconds} s`, seconds);
        },
      },
    },
    schema: { body: ChatBody, response: { 200: Type.Unknown(), ...errors(400, 401, 403, 404, 409, 429, 502, 503) } },
  }, async (request, reply) => {
    const user = request.user!;
    const { agentId, sessionId, ...payload } = request.body;
    // Registered until the answer is sent: deactivating the user aborts the
    // request to the agent and ends the (possibly streaming) answer.
    const handle = live.open(user.id, 'chat');
    reply.raw.once('close', () => handle.release());
    handle.signal.addEventListener('abort', () => {
      if (reply.raw.headersSent) reply.raw.destroy();
    }, { once: true });
    try {
      const agent = await callerAgent(user, agentId);
      touch(agent.id);
      const res = await forward(agent, user, '/v1/chat/completions', { method: 'POST', body: JSON.stringify(payload), sessionId, signal: handle.signal });
      touch(agent.id);
      const type = res.headers['content-type'] ?? 'application/json';
      reply.code((res.statusCode ?? 502) as 200).header('content-type', type);
      if (type.includes('text/event-stream')) reply.header('cache-control', 'no-cache').header('x-accel-buffering', 'no');
      // Passed through as it arrives: SSE chunks are never buffered here.
      return reply.send(res);
    } catch (err) {
      handle.release();
      throw err;
    }
  });

  // A GET never creates or starts anything: a cross-site top-level GET must
  // not be able to boot someone's agent. The history lives in the agent's
  // volume, so it is read only while the agent runs; otherwise the answer is
  // an empty list with agentRunning: false (the UI shows that, and the next
  // chat starts the agent).
  app.get('/api/chat/sessions', {
    schema: {
      response: {
        200: Type.Object({ sessions: Type.Array(Type.Unknown()), agentRunning: Type.Optional(Type.Boolean()) }),
        ...errors(401, 403, 502, 503),
      },
    },
  }, async (request, reply) => {
    const user = request.user!;
    const agent = await core.agents.findOwned('user', user.id);
    if (!agent || agent.status !== 'running' || !agent.gatewayPort) return { sessions: [], agentRunning: false };
    let res: http.IncomingMessage;
    try {
      res = await send(agent.gatewayPort, '/v1/sessions', 'GET', {
        authorization: `Bearer ${core.agents.gatewayToken(agent)}`,
        'x-hangar-user-id': user.id,
        'x-hangar-user-name': encodeURIComponent(user.displayName),
      });
    } catch (err) {
      throw new UnavailableError(`Could not read the history from the agent (${(err as Error).message})`, 'agent_unreachable');
    }
    if (res.statusCode !== 200) {
      res.resume();
      throw new AppError(502, 'agent_bad_answer', `The agent answered ${res.statusCode} for its history`);
    }
    // Piped as it arrives (the agent's own {"sessions": [...]}), never buffered here.
    return reply.code(200).header('content-type', 'application/json').send(res as never);
  });
}
