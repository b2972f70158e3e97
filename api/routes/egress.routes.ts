import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Client } from '@temporalio/client';
import { Type } from 'typebox';
import { CONTROL_TASK_QUEUE } from '../../core/contracts/agent.contract.ts';
import { egressPolicyWorkflowId, type EgressReport } from '../../core/contracts/egress.contract.ts';
import type { Core } from '../../core/hangar.ts';
import { MAX_ALLOW_ENTRIES } from '../../core/services/egress-settings.service.ts';
import { egressPolicy } from '../../workflows/egress-policy.workflow.ts';
import { errors, Nullable, strict } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';

// The agent egress allowlist for admins (README "Agent egress"). A save is
// applied by every Docker-host worker through the `egressPolicy` workflow:
// the API never touches Docker or iptables itself.

/** How long a save waits for the hosts to report before answering "pending". */
const APPLY_WAIT_MS = 15_000;

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

/** Starts the policy workflow on every registered Docker host and waits (bounded) for their reports. */
export async function applyEgressEverywhere(core: Core, temporal: Client, waitMs = APPLY_WAIT_MS) {
  const hosts = await core.db.dockerHost.findMany({ where: { status: { not: 'disabled' } }, select: { id: true }, orderBy: { id: 'asc' } });
  return Promise.all(hosts.map(async ({ id: hostId }) => {
    const workflowId = egressPolicyWorkflowId(hostId);
    const handle = await temporal.workflow.start(egressPolicy, {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId,
      args: [{ hostId }],
      // The newest save wins; a run still waiting for a stopped worker is replaced.
      workflowIdConflictPolicy: 'TERMINATE_EXISTING',
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      workflowExecutionTimeout: '1 hour',
      staticSummary: `Apply the agent egress policy on Docker host ${hostId}`,
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((r) => (timer = setTimeout(() => r(null), waitMs)));
    try {
      const report = (await Promise.race([handle.result(), timeout])) as EgressReport | null;
      if (!report) return { hostId, workflowId, status: 'pending' as const, reason: 'the host has not reported yet (its worker applies the policy when it starts)', networks: [] };
      return { hostId, workflowId, status: report.enforced ? ('applied' as const) : ('not_enforced' as const), reason: report.reason, networks: report.networks };
    } catch (err) {
      return { hostId, workflowId, status: 'failed' as const, reason: (err as Error).message, networks: [] };
    } finally {
      clearTimeout(timer);
    }
  }));
}

export async function egressRoutes(fastify: FastifyInstance, { core, auth, temporal }: RouteDeps) {
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
    return { ...(await view()), hosts: await applyEgressEverywhere(core, temporal) };
  });
}
