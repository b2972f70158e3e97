import http from 'node:http';
import { Context } from '@temporalio/activity';
import type Docker from 'dockerode';
import pLimit from 'p-limit';
import { AGENT_PORT, LABEL_AGENT_ID, LABEL_INSTANCE, LABEL_MANAGED } from '../core/contracts/agent.contract.ts';
import type { AgentHealthCheck } from '../core/contracts/agent.contract.ts';

/** One GET on a fresh connection; resolves with the status, the body discarded. */
function statusOf(host: string, port: number, path: string, signal: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path, agent: false, signal }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    // Aborted: the signal's own reason (a TimeoutError for AbortSignal.timeout), as fetch gave it.
    req.once('error', (err) => reject(signal.aborted ? signal.reason : err));
  });
}

/**
 * Ready to serve: OpenClaw's /readyz (startup done, agent databases
 * admitted; its /health is only "the HTTP server is live", and session
 * tools answer "unavailable during gateway startup" until ready). An agent
 * without /readyz (the reference agent before 1.1, answering 404 or 401)
 * is asked /health instead. `signal` is called per request: one per request
 * bounds each, one shared bounds the pair.
 *
 * node:http rather than fetch: a start polls this every 5 ms while the new
 * container boots on the same CPUs, and a worker's profile during starts
 * had fetch's machinery (undici's request, wrapped errors) as a quarter of
 * the worker's CPU. The refusals also say what happened ("connect
 * ECONNREFUSED", "socket hang up") where fetch said "fetch failed".
 */
export async function probeAgent(agentHost: string, hostPort: number, signal: () => AbortSignal): Promise<{ ok: boolean; detail: string }> {
  const ready = await statusOf(agentHost, hostPort, '/readyz', signal());
  if (ready >= 200 && ready < 300) return { ok: true, detail: 'ready' };
  if (ready !== 404 && ready !== 401) return { ok: false, detail: `readyz answered ${ready}` };
  const health = await statusOf(agentHost, hostPort, '/health', signal());
  return { ok: health >= 200 && health < 300, detail: `health answered ${health}` };
}

/** Agents probed at once per host: enough to finish a large host within a reconcile, few enough not to swamp it. */
const PROBES_IN_FLIGHT = 32;

/** Docker's own view, from a HEALTHCHECK in the image: "Up 3 minutes (unhealthy)". */
function dockerHealthOf(status: string): AgentHealthCheck['dockerHealth'] {
  const m = /\((healthy|unhealthy|health: starting)\)/.exec(status);
  if (!m) return null;
  return m[1] === 'health: starting' ? 'starting' : (m[1] as 'healthy' | 'unhealthy');
}

export interface HealthActivityDeps {
  docker: Docker;
  /** Where published agent ports are reached from this worker. */
  agentHost?: string;
  /** HANGAR_HEALTH_CHECK_TIMEOUT_MS: one agent's check, both requests. */
  timeoutMs: number;
}

export function createHealthActivities({ docker, agentHost = '127.0.0.1', timeoutMs }: HealthActivityDeps) {
  return {
    /**
     * Asks every running agent container of this installation on this host
     * whether it is ready (as the lifecycle's start does), PROBES_IN_FLIGHT at
     * a time, each within `timeoutMs`. Never throws for an agent: a refused
     * connection or a timeout is that agent's failed check. Whether a failure
     * counts, and what follows, is decided with the database (fleet activities).
     */
    async checkAgentHealth(instanceId: string): Promise<AgentHealthCheck[]> {
      const list = await docker.listContainers({
        filters: { status: ['running'], label: [`${LABEL_MANAGED}=true`, `${LABEL_INSTANCE}=${instanceId}`] },
      });
      const limit = pLimit(PROBES_IN_FLIGHT);
      let done = 0;
      const checks = await Promise.all(list.map((c) => limit(async (): Promise<AgentHealthCheck | null> => {
        const agentId = c.Labels[LABEL_AGENT_ID];
        if (!agentId) return null;
        const port = c.Ports.find((p) => p.PrivatePort === AGENT_PORT && p.PublicPort)?.PublicPort;
        const dockerHealth = dockerHealthOf(c.Status ?? '');
        let result: { ok: boolean; detail: string };
        if (!port) result = { ok: false, detail: 'no published agent port' };
        else {
          try {
            const bound = AbortSignal.timeout(timeoutMs);
            result = await probeAgent(agentHost, port, () => bound);
          } catch (err) {
            const e = err as Error;
            result = { ok: false, detail: e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : e.message };
          }
        }
        // The SDK throttles heartbeats: one per probe costs nothing and keeps a slow host's run alive.
        Context.current().heartbeat({ done: ++done });
        return { agentId, ok: result.ok, detail: result.detail, dockerHealth };
      })));
      return checks.filter((c): c is AgentHealthCheck => c !== null);
    },
  };
}
