import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { RouteDeps } from '../app.ts';

export async function healthRoutes(fastify: FastifyInstance, { core, auth, readiness }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

  app.get('/healthz', { schema: { response: { 200: Type.Object({ status: Type.Literal('ok') }) } } }, async () => ({ status: 'ok' as const }));

  // Load balancers get ready / not ready; which dependency is down (and its
  // error text) is for admins only: a session, or a token with the admin scope.
  const Ready = Type.Object({
    status: Type.Union([Type.Literal('ready'), Type.Literal('unavailable')]),
    checks: Type.Optional(Type.Record(Type.String(), Type.String())),
  });
  app.get('/readyz', { schema: { response: { 200: Ready, 503: Ready } } }, async (request, reply) => {
    const checks: Record<string, string> = {};
    const probe = async (name: string, fn: () => Promise<unknown>) => {
      try {
        await Promise.race([fn(), new Promise((_, rej) => setTimeout(() => rej(new Error('timeout')), 3000))]);
        checks[name] = 'ok';
      } catch (err) {
        checks[name] = `down: ${(err as Error).message}`;
      }
    };
    await Promise.all([
      probe('postgres', () => core.settings.ping()),
      probe('temporal', () => core.temporal.ping()),
      ...(readiness.docker ? [probe('docker', readiness.docker)] : []),
    ]);
    const ok = Object.values(checks).every((v) => v === 'ok');
    const detailed = await auth.isAdminCaller(request);
    return reply.code(ok ? 200 : 503).send({ status: ok ? 'ready' : 'unavailable', ...(detailed ? { checks } : {}) });
  });
}
