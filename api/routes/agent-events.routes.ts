import type { FastifyInstance } from 'fastify';
import { toPublicAgent } from '../../core/services/agents.service.ts';
import { errors } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';

// Live agent status for the UI (server-sent events). The lifecycle workflow
// writes every change to the agent row, so each open stream reads that row
// once a second and sends it when it differs. Bounded: a stream lives at most
// an hour (EventSource reconnects) and an idle one gets a comment every 15 s.

const POLL_MS = 1000;
const MAX_STREAM_MS = 3600_000;
const MAX_STREAMS = 500;

export async function agentEventRoutes(fastify: FastifyInstance, { core, auth, control }: RouteDeps) {
  let open = 0;
  fastify.get('/api/me/agent/events', {
    preHandler: auth.requireUser,
    schema: { response: { ...errors(401, 429) } },
  }, async (request, reply) => {
    if (open >= MAX_STREAMS) return reply.code(429).header('retry-after', '5').send({ error: { code: 'rate_limited', message: 'Too many live streams; try again shortly' } });
    open++;
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    const userId = request.user!.id;
    let last = '';
    let closed = false;
    const started = Date.now();
    let lastWrite = Date.now();
    raw.on('close', () => (closed = true));
    try {
      for (let i = 0; !closed && Date.now() - started < MAX_STREAM_MS && i < MAX_STREAM_MS / POLL_MS; i++) {
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
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
    } finally {
      open--;
      raw.end();
    }
  });
}
