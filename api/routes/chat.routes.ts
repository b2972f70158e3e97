import http from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Agent, User } from '../../core/db.ts';
import { AppError, BudgetExceededError, RateLimitedError, UnauthorizedError, UnavailableError } from '../../core/errors.ts';
import { errors, strict } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';
import type { WorkspaceRole } from '../../core/contracts/workspace.contract.ts';
import { speakerHeaders } from '../speaker-identity.ts';
import { relayAnswer } from '../chat-relay.ts';

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
 * What a deactivation mid-chat must end: set by the live registry's callback,
 * read by the proxy between its steps (a plain object rather than an
 * AbortSignal: this is on every chat's path).
 */
interface Cut {
  aborted: boolean;
  /** The request to the agent in flight, destroyed on a cut. */
  request: http.ClientRequest | null;
}

/**
 * One request to an agent. node:http rather than fetch: the answer is relayed
 * to the client as the agent writes it, without a web-stream conversion on the way.
 */
function send(port: number, path: string, method: string, headers: Record<string, string>, body?: string, cut?: Cut): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent: agentConnections }, resolve);
    req.on('error', reject);
    if (cut) cut.request = req;
    req.end(body);
  });
}

const deactivatedMidway = () => new UnauthorizedError('This account was deactivated', 'account_deactivated');

/** Hangar's sessions in an agent, per user: OpenClaw lower-cases session keys, so Hangar does first. */
const sessionKey = (userId: string, sessionId = 'default') => `hangar:${userId}:${sessionId}`.toLowerCase();
/** The same key as OpenClaw lists it: agent:<agentId>:hangar:<userId>:<session>. */
const listedKey = (userId: string) => new RegExp(`^agent:[^:]+:hangar:${userId.toLowerCase().replace(/[^a-z0-9-]/g, '')}:([a-z0-9_-]{1,64})$`);
/** Any speaker's session in a shared (workspace) agent: agent:<agentId>:hangar:<userId>:<session>. */
const anyListedKey = /^agent:[^:]+:hangar:([a-z0-9-]{1,64}):([a-z0-9_-]{1,64})$/;
/** Sessions read per history request, newest first, and messages per session. */
const HISTORY_SESSIONS = 20;
const HISTORY_MESSAGES = 200;

const SessionsView = Type.Object({
  agentRunning: Type.Optional(Type.Boolean()),
  sessions: Type.Array(Type.Object({
    id: Type.String(),
    /** A workspace agent's history is shared by its members: whose conversation this is. */
    userId: Type.Optional(Type.String()),
    updatedAt: Type.Union([Type.String(), Type.Null()]),
    messages: Type.Array(Type.Object({
      role: Type.Union([Type.Literal('user'), Type.Literal('assistant')]),
      content: Type.String(),
      at: Type.Union([Type.String(), Type.Null()]),
      model: Type.Optional(Type.String()),
    })),
  })),
});

interface ToolMessage {
  role?: string;
  content?: unknown;
  timestamp?: number;
  model?: string;
}

/** A transcript message's text: OpenClaw stores a string or an array of typed parts. */
function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content.map((p) => (p && typeof p === 'object' && (p as { type?: string }).type === 'text' ? String((p as { text?: unknown }).text ?? '') : '')).join('');
  }
  return '';
}

async function readJson(res: http.IncomingMessage, limit = 8 * 1024 * 1024): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of res) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new UnavailableError('The agent answered more history than Hangar reads', 'agent_bad_answer');
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new UnavailableError('The agent answered something that is not JSON', 'agent_bad_answer');
  }
}

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

  /**
   * Your own agent (from the lookup cache), or by id a workspace agent of a
   * workspace you belong to with at least `need`.
   */
  async function callerAgent(user: User, agentId: string | undefined, need: WorkspaceRole): Promise<{ agent: Agent; role: WorkspaceRole | null }> {
    const own = await core.agents.findOwnedForRouting('user', user.id);
    if (agentId && (!own || own.id !== agentId)) return core.workspaceAgents.forSpeaker(user.id, agentId, need);
    return { agent: own ?? (await core.agents.getOrCreate('user', user.id)), role: null };
  }

  /**
   * Routes from the database while the agent runs, so chat keeps working when
   * Temporal is down; only a start needs the workflow.
   */
  async function forward(agent: Agent, user: User, path: string, init: { method: string; body?: string; sessionId?: string; model?: string; cut?: Cut; mayStart?: boolean; role?: WorkspaceRole | null }) {
    let row = agent;
    for (let attempt = 0; attempt < 2; attempt++) {
      if (init.cut?.aborted) throw deactivatedMidway();
      if (row.status !== 'running' || !row.gatewayPort) {
        // Reads (history) never start an agent; only a chat does.
        if (init.mayStart === false) throw new UnavailableError('The agent is not running', 'agent_unreachable');
        await control.ensureRunning(row);
        // A workspace agent started by a chat gets the member changes made while it was stopped.
        if (row.ownerKind === 'workspace') void core.memberControl.requestSync(row.ownerId, 'agent started');
        row = await core.agents.get(row.id);
      }
      try {
        // Built from scratch: nothing the caller sent under x-hangar-user-* can pass through.
        const headers: Record<string, string> = {
          authorization: `Bearer ${core.agents.gatewayToken(row)}`,
          ...speakerHeaders(user, init.role ?? null),
        };
        if (init.body) headers['content-type'] = 'application/json';
        // OpenClaw's session routing: the agent keeps the conversation, so
        // the client sends only the new turn and history survives restarts.
        headers['x-openclaw-session-key'] = sessionKey(user.id, init.sessionId);
        if (init.model) headers['x-openclaw-model'] = init.model;
        return await send(row.gatewayPort!, path, init.method, headers, init.body, init.cut);
      } catch (err) {
        if (init.cut?.aborted) throw deactivatedMidway();
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
    schema: { body: ChatBody, response: { 200: Type.Unknown(), ...errors(400, 401, 403, 404, 409, 410, 429, 502, 503) } },
  }, async (request, reply) => {
    const user = request.user!;
    const { agentId, sessionId, model, ...payload } = request.body;
    // Registered until the answer is sent: deactivating the user ends the
    // request to the agent and the (possibly streaming) answer.
    const cut: Cut = { aborted: false, request: null };
    const handle = live.open(user.id, 'chat', () => {
      cut.aborted = true;
      cut.request?.destroy();
      if (reply.raw.headersSent) reply.raw.destroy();
    });
    reply.raw.once('close', () => handle.release());
    try {
      // Chatting writes to the agent (and may start it): viewers of a workspace only read.
      const { agent, role } = await callerAgent(user, agentId, 'member');
      touch(agent.id);
      // Budgets are checked before the agent is contacted, from memory (see usage.service.ts).
      const workspaceId = agent.ownerKind === 'workspace' ? agent.ownerId : null;
      const over = core.usage.overBudget(user.id, workspaceId);
      if (over) {
        core.usage.refused(over.scope);
        const whose = over.scope === 'user' ? 'Your' : "This workspace's";
        throw new BudgetExceededError(`${whose} monthly token budget (${over.monthlyTokens}) is used up; it resets at ${over.resetsAt}`, {
          scope: over.scope,
          monthlyTokens: over.monthlyTokens,
          used: over.used,
          resetsAt: over.resetsAt,
        });
      }
      // OpenClaw reads `model` as the agent to run ("openclaw/default"); a
      // provider model the caller asks for travels as x-openclaw-model.
      const body = JSON.stringify({ ...payload, model: 'openclaw/default' });
      const res = await forward(agent, user, '/v1/chat/completions', { method: 'POST', body, sessionId, model, cut, role });
      touch(agent.id);
      const served = typeof res.headers['x-hangar-model'] === 'string' ? res.headers['x-hangar-model'] : undefined;
      // From here the answer is written straight onto the socket (see
      // chat-relay.ts); fastify still runs its onResponse hooks (metrics)
      // when it finishes. The security headers are already on reply.raw.
      reply.hijack();
      try {
        relayAnswer(res, reply.raw, {
          onUsage: (u) => core.usage.record({ userId: user.id, agentId: agent.id, workspaceId, model: (served ?? u.model ?? model ?? 'unknown').slice(0, 200), tokensIn: u.tokensIn, tokensOut: u.tokensOut }),
        });
      } catch {
        // Fastify no longer answers for a hijacked reply: whatever went wrong, the client must not wait forever.
        res.destroy();
        reply.raw.destroy();
      }
    } catch (err) {
      handle.release();
      if (cut.aborted) throw deactivatedMidway();
      throw err;
    }
  });

  /** One of OpenClaw's tools through POST /tools/invoke (the session tools are read-only). */
  async function invokeTool(agent: Agent, user: User, role: WorkspaceRole | null, tool: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
    const res = await forward(agent, user, '/tools/invoke', { method: 'POST', body: JSON.stringify({ tool, args }), mayStart: false, role });
    const answer = (await readJson(res)) as { ok?: boolean; result?: { details?: Record<string, unknown> }; error?: { message?: string } };
    if ((res.statusCode ?? 500) >= 400 || !answer?.ok || !answer.result?.details) {
      throw new UnavailableError(`The agent's ${tool} failed (HTTP ${res.statusCode}${answer?.error?.message ? `: ${answer.error.message}` : ''})`, 'agent_bad_answer');
    }
    return answer.result.details;
  }

  // The caller's conversations as the agent keeps them (OpenClaw's sessions
  // on the agent's volume), newest first. A GET never creates or starts
  // anything: a cross-site top-level GET must not boot someone's agent, so the
  // history is read only while the agent runs; otherwise the answer is an
  // empty list with agentRunning: false (the next chat starts the agent).
  // With ?agentId= a workspace agent's history, which its members share
  // (viewers included: reading is what they may do): every speaker's
  // sessions, each marked with whose it is.
  app.get('/api/chat/sessions', {
    schema: { querystring: strict({ agentId: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })) }), response: { 200: SessionsView, ...errors(400, 401, 403, 404, 410, 503) } },
  }, async (request) => {
    const user = request.user!;
    const { agent, role } = request.query.agentId
      ? await callerAgent(user, request.query.agentId, 'viewer')
      : { agent: await core.agents.findOwned('user', user.id), role: null };
    if (!agent || agent.status !== 'running' || !agent.gatewayPort) return { sessions: [], agentRunning: false };
    const shared = agent.ownerKind === 'workspace';
    try {
      const mine = listedKey(user.id);
      const listed = ((await invokeTool(agent, user, role, 'sessions_list', { limit: 200 })).sessions ?? []) as Array<{ key?: string; updatedAt?: number }>;
      const own = listed
        .map((s) => {
          const key = s.key ?? '';
          const any = shared ? anyListedKey.exec(key) : null;
          return { key, id: shared ? any?.[2] : mine.exec(key)?.[1], userId: any?.[1], updatedAt: s.updatedAt };
        })
        .filter((s): s is { key: string; id: string; userId: string | undefined; updatedAt: number | undefined } => Boolean(s.id))
        .sort((a, b) => (b.updatedAt ?? 0) - (a.updatedAt ?? 0))
        .slice(0, HISTORY_SESSIONS);
      const fresh = await core.agents.get(agent.id);
      const sessions = [];
      for (const s of own) {
        const details = await invokeTool(fresh, user, role, 'sessions_history', { sessionKey: s.key, limit: HISTORY_MESSAGES });
        const messages = ((details.messages ?? []) as ToolMessage[])
          .filter((m) => m.role === 'user' || m.role === 'assistant')
          .map((m) => ({
            role: m.role as 'user' | 'assistant',
            content: textOf(m.content),
            at: typeof m.timestamp === 'number' ? new Date(m.timestamp).toISOString() : null,
            ...(m.role === 'assistant' && typeof m.model === 'string' ? { model: m.model } : {}),
          }))
          .filter((m) => m.content !== '');
        sessions.push({ id: s.id, ...(s.userId ? { userId: s.userId } : {}), updatedAt: s.updatedAt ? new Date(s.updatedAt).toISOString() : null, messages });
      }
      return { sessions };
    } catch (err) {
      if (err instanceof AppError) throw err;
      throw new UnavailableError('Could not read the history from the agent', 'agent_unreachable');
    }
  });
}
