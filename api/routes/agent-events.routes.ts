import type { FastifyInstance } from 'fastify';
import { toPublicAgent } from '../../core/services/agents.service.ts';
import { errors } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';

// Live agent status for the UI (server-sent events). The lifecycle workflow
// writes every change to the agent row, so each open stream reads that row
// once a second and sends it when it differs. Bounded: a stream lives at most
// an hour (EventSource reconnects), an idle one gets a comment every 15 s,
// each user holds at most HANGAR_MAX_STREAMS_PER_USER of them (429
// too_many_streams), and a deactivated user's streams end at once (the live
// registry here; every 10 s the caller is checked again, for other replicas).

const POLL_MS = 1000;
const MAX_STREAM_MS = 3600_000;
const RECHECK_EVERY = 10;

export async function agentEventRoutes(fastify: FastifyInstance, { core, auth, control, live }: RouteDeps) {
  fastify.get('/api/me/agent/events', {
    preHandler: auth.requireUser,
    schema: {
      response: {
        200: { description: 'Server-sent events: `agent` (the agent view, or null) on every change, `end` when the stream is ended for good', content: { 'text/event-stream': { schema: { type: 'string' } } } },
        ...errors(401, 403, 429),
      },
    },
  }, async (request, reply) => {
    const userId = request.user!.id;
    const handle = live.open(userId, 'stream');
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    let last = '';
    let closed = false;
    let deactivated = false;
    const started = Date.now();
    let lastWrite = Date.now();
    raw.on('close', () => (closed = true));
    // Wakes the loop's sleep at once when the user is deactivated.
    const aborted = new Promise<void>((r) => handle.signal.addEventListener('abort', () => r(), { once: true }));
    try {
      for (let i = 0; !closed && !handle.signal.aborted && Date.now() - started < MAX_STREAM_MS && i < MAX_STREAM_MS / POLL_MS; i++) {
        if (i > 0 && i % RECHECK_EVERY === 0) {
          const user = await core.users.get(userId).catch(() => null);
          if (user && user.status !== 'active') {
            deactivated = true;
            break;
          }
        }
        const agent = await core.agents.findOwned('user', userId).catch(() => undefined);
        if (agent !== undefined) {
          const body = JSON.stringify(agent ? { ...toPublicAgent(agent), temporalUrl: control.workflowUrl(agent) } : null);
          if (body !== last) {
            raw.write(`event: agent\ndata: ${body}\n\n`);
            last = body;
            lastWrite = Date.now();
          }
        }
        if (Date.now() - lastWrite > 15_000) {
          raw.write(': keep-alive\n\n');
          lastWrite = Date.now();
        }
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([new Promise((r) => (timer = setTimeout(r, POLL_MS))), aborted]);
        clearTimeout(timer);
      }
      // Said before the end, so the UI stops instead of reconnecting into a 401.
      if (!closed && (deactivated || handle.signal.aborted)) {
        raw.write(`event: end\ndata: ${JSON.stringify({ reason: 'account_deactivated' })}\n\n`);
      }
    } finally {
      handle.release();
      raw.end();
    }
  });
}
