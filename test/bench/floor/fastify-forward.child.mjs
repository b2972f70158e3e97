// The proxy floor of the chosen stack, for the proxy bench: fastify with
// nothing of Hangar's (no auth, lookup, rate limit, meter or validation)
// parsing the chat body and forwarding it with node:http over kept-alive
// sockets, the agent's answer piped back. What this loses against
// configurable-http-proxy (which never parses a body) is what the framework
// costs before Hangar adds anything.
//   FLOOR_AGENT_HEADERS=<the agent's headers as JSON> node fastify-forward.child.mjs <port> <agent base URL>
// (the headers carry the agent's gateway token: in the environment, not on a command line others can read)
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';

const [port, target] = process.argv.slice(2);
const require = createRequire(path.resolve(import.meta.dirname, '../../../package.json'));
const Fastify = require('fastify');
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const { hostname, port: targetPort } = new URL(target);
const headers = JSON.parse(process.env.FLOOR_AGENT_HEADERS ?? '{}');
const app = Fastify({ logger: false });
app.post('/api/chat', (request, reply) => {
  const body = JSON.stringify({ ...request.body, model: 'openclaw/default' });
  reply.hijack();
  const upstream = http.request({ host: hostname, port: targetPort, path: '/v1/chat/completions', method: 'POST', agent, headers: { ...headers, 'content-length': Buffer.byteLength(body) } }, (answer) => {
    reply.raw.writeHead(answer.statusCode ?? 502, { 'content-type': answer.headers['content-type'] ?? 'application/json' });
    answer.pipe(reply.raw);
  });
  upstream.once('error', () => reply.raw.destroy());
  upstream.end(body);
});
await app.listen({ port: Number(port), host: '127.0.0.1' });
console.log('ready');
// An orderly exit, so --cpu-prof writes its profile.
process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
