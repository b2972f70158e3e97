import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { MAX_ALLOW_ENTRIES } from '../../core/services/egress-settings.service.ts';
import { errors, Nullable, strict } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';

// The agent egress allowlist for admins (README "Agent egress"). A save is
// applied by every Docker-host worker through the `egressPolicy` workflow:
// the API never touches Docker or iptables itself.

const Entry = Type.String({ minLength: 1, maxLength: 100, pattern: '^[0-9A-Za-z:./\\[\\]]+$' });
const EgressView = Type.Object({
  allow: Type.Array(Type.String()),
  source: Type.Union([Type.Literal('settings'), Type.Literal('default')]),
  defaultAllow: Type.Array(Type.String()),
  policy: Type.Union([Type.Literal('on'), Type.Literal('off')]),
});
const HostResult = Type.Object({
  hostId: Type.String(),
  workflowId: Type.String(),
  status: Type.Union([Type.Literal('applied'), Type.Literal('not_enforced'), Type.Literal('pending'), Type.Literal('failed')]),
  reason: Nullable(Type.String()),
  networks: Type.Array(Type.Object({ network: Type.String(), bridge: Type.String() })),
});

export async function egressRoutes(fastify: FastifyInstance, { core, auth }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.addHook('preHandler', auth.requireAdmin);
  const view = async () => ({ ...(await core.egress.get()), defaultAllow: core.egress.defaults(), policy: core.config.egressPolicy });

  app.get('/api/admin/egress', { schema: { response: { 200: EgressView, ...errors(401, 403) } } }, view);

  app.put('/api/admin/egress', {
    schema: {
      body: strict({ allow: Type.Array(Entry, { maxItems: MAX_ALLOW_ENTRIES }) }),
      response: { 200: Type.Object({ ...EgressView.properties, hosts: Type.Array(HostResult) }), ...errors(400, 401, 403, 503) },
    },
  }, async (request) => {
    const before = await core.egress.get();
    const saved = await core.egress.put(request.body.allow);
    await core.audit.record({ actorId: request.user!.id, action: 'egress.allowlist', target: 'egress', before, after: saved });
    return { ...(await view()), hosts: await core.egressControl.applyEverywhere() };
  });
}
