import type { FastifyInstance } from 'fastify';
import type { Auth } from './auth.ts';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { UNHEALTHY_RESTARTED_EVENT } from '../core/contracts/agent.contract.ts';
import type { AgentService } from '../core/services/agents.service.ts';
import type { RolloutService } from '../core/services/rollouts.service.ts';

// Prometheus metrics for one API process (GET /metrics). Agents by status are
// read from the database at scrape time, so every API replica reports the
// same fleet-wide numbers. Scraping needs an admin: Prometheus sends an
// admin's API token with the `admin` scope (README, "Metrics").
export function createMetrics({ agents, rollouts }: { agents: AgentService; rollouts: RolloutService }, opts: { storageCapBytes?: number } = {}) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'hangar_process_' });
  const httpDuration = new Histogram({
    name: 'hangar_http_request_duration_seconds',
    help: 'HTTP request latency by route and status',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120],
    registers: [registry],
  });
  const workflowCalls = new Counter({
    name: 'hangar_workflow_operations_total',
    help: 'Operations sent to agent lifecycle workflows, by operation and outcome',
    labelNames: ['operation', 'outcome'],
    registers: [registry],
  });
  const usageTokens = new Counter({
    name: 'hangar_usage_tokens_total',
    help: 'Tokens metered by the chat proxy (this API process), by direction (in = prompt, out = completion) and model',
    labelNames: ['direction', 'model'],
    registers: [registry],
  });
  const usageAnswers = new Counter({
    name: 'hangar_usage_answers_total',
    help: 'Chat answers that reported token usage (this API process)',
    registers: [registry],
  });
  const budgetRefusals = new Counter({
    name: 'hangar_budget_refusals_total',
    help: 'Chats refused with 429 budget_exceeded, by the budget that was used up (user or workspace)',
    labelNames: ['scope'],
    registers: [registry],
  });
  new Gauge({
    name: 'hangar_agents',
    help: 'Agents by status',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      const counts = await agents.countByStatus();
      this.reset();
      for (const [status, n] of Object.entries(counts)) this.set({ status }, n);
    },
  });

  // Storage per agent volume, as fleet-reconcile last measured it (one series per measured agent).
  new Gauge({
    name: 'hangar_agent_storage_bytes',
    help: 'Bytes in each agent volume at the last measurement',
    labelNames: ['agent', 'owner_kind', 'host'],
    registers: [registry],
    async collect() {
      const rows = await agents.measuredStorage();
      this.reset();
      for (const r of rows) this.set({ agent: r.id, owner_kind: r.ownerKind, host: r.dockerHostId }, Number(r.storageBytes));
    },
  });
  if (opts.storageCapBytes !== undefined) {
    const cap = opts.storageCapBytes;
    new Gauge({
      name: 'hangar_agent_storage_cap_bytes',
      help: 'Per-agent storage cap (HANGAR_AGENT_STORAGE_MB): an agent over it is stopped',
      registers: [registry],
      collect() {
        this.set(cap);
      },
    });
    new Gauge({
      name: 'hangar_agents_over_storage_cap',
      help: 'Agents whose last measurement is over the storage cap',
      registers: [registry],
      async collect() {
        this.set(await agents.countOverStorage(cap));
      },
    });
  }

  // Health beyond "running" (fleet-reconcile's checks): agents failing now, and the restarts they led to.
  new Gauge({
    name: 'hangar_agents_failing_health',
    help: 'Running agents whose last health check failed (not yet restarted)',
    registers: [registry],
    async collect() {
      this.set(await agents.countFailingHealth());
    },
  });
  new Gauge({
    name: 'hangar_agent_unhealthy_restarts_24h',
    help: 'Agents restarted by the reconciler for failing health checks in the last 24 hours (agent.unhealthy_restarted events)',
    registers: [registry],
    async collect() {
      this.set(await rollouts.countEventsSince(UNHEALTHY_RESTARTED_EVENT, new Date(Date.now() - 24 * 3600_000)));
    },
  });

  // Rollout progress: agents per status across the rollouts still in flight.
  new Gauge({
    name: 'hangar_rollout_agents',
    help: 'Agents of running or paused rollouts, by rollout and update status',
    labelNames: ['rollout', 'image', 'status'],
    registers: [registry],
    async collect() {
      const rows = await rollouts.inFlight(50);
      this.reset();
      for (const r of rows) {
        for (const [status, n] of Object.entries(r.counts as Record<string, number>)) {
          if (status !== 'total') this.set({ rollout: r.id, image: r.image, status }, n);
        }
      }
    },
  });
  new Gauge({
    name: 'hangar_rollouts',
    help: 'Rollouts by status',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      const counts = await rollouts.countByStatus();
      this.reset();
      for (const [status, n] of Object.entries(counts)) this.set({ status }, n);
    },
  });

  return {
    registry,
    workflowCalls,
    usageTokens,
    usageAnswers,
    budgetRefusals,
    install(app: FastifyInstance, auth: Auth) {
      app.addHook('onResponse', async (request, reply) => {
        const route = request.routeOptions.url ?? 'unmatched';
        httpDuration.observe({ method: request.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
      });
      app.get('/metrics', { preHandler: auth.requireAdmin, schema: { hide: true } }, async (_request, reply) => {
        reply.header('content-type', registry.contentType);
        return registry.metrics();
      });
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
