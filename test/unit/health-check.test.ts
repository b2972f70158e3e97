import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { MockActivityEnvironment } from '@temporalio/testing';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHealthActivities } from '../../activities/health.activities.ts';
import { AGENT_PORT, LABEL_AGENT_ID, type AgentHealthCheck } from '../../core/contracts/agent.contract.ts';

// The reconciler's per-host health check against small HTTP servers on
// loopback (Docker's container list faked): each kind of answer becomes the
// right check, a hung agent is a failed check once the timeout passes, and
// nothing throws.

type Behaviour = 'ready' | 'health-only' | 'hang' | 'broken';

function agentServer(behaviour: Behaviour): http.Server {
  return http.createServer((req, res) => {
    if (behaviour === 'hang') return; // takes the connection, never answers
    if (behaviour === 'broken') return void res.writeHead(503).end();
    if (req.url === '/readyz') return void res.writeHead(behaviour === 'ready' ? 200 : 404).end();
    if (req.url === '/health') return void res.writeHead(200).end();
    res.writeHead(404).end();
  });
}

describe('checkAgentHealth', () => {
  const servers = new Map<Behaviour, http.Server>();
  const ports = new Map<Behaviour, number>();

  beforeAll(async () => {
    for (const b of ['ready', 'health-only', 'hang', 'broken'] as Behaviour[]) {
      const s = agentServer(b);
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      servers.set(b, s);
      ports.set(b, (s.address() as AddressInfo).port);
    }
  });
  afterAll(async () => {
    for (const s of servers.values()) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  });

  const container = (agentId: string, port: number | null, status = 'Up 2 minutes') => ({
    Labels: { [LABEL_AGENT_ID]: agentId },
    Ports: port ? [{ PrivatePort: AGENT_PORT, PublicPort: port, Type: 'tcp', IP: '127.0.0.1' }] : [],
    Status: status,
  });

  it('turns each kind of answer into a check, within the timeout, without throwing', async () => {
    let filters: unknown;
    const docker = {
      listContainers: async (opts: { filters: unknown }) => {
        filters = opts.filters;
        return [
          container('a-ready', ports.get('ready')!, 'Up 5 minutes (healthy)'),
          container('a-health-only', ports.get('health-only')!),
          container('a-hang', ports.get('hang')!, 'Up 5 minutes (unhealthy)'),
          container('a-broken', ports.get('broken')!, 'Up 1 second (health: starting)'),
          container('a-no-port', null),
          { ...container('x', ports.get('ready')!), Labels: {} }, // not an agent: skipped
        ];
      },
    } as unknown as Docker;
    const { checkAgentHealth } = createHealthActivities({ docker, timeoutMs: 300 });
    const checks: AgentHealthCheck[] = await new MockActivityEnvironment().run(checkAgentHealth, 'inst-1');
    expect(filters).toEqual({ status: ['running'], label: ['dev.hangar.managed=true', 'dev.hangar.instance=inst-1'] });
    expect(new Map(checks.map((c) => [c.agentId, c]))).toEqual(new Map([
      ['a-ready', { agentId: 'a-ready', ok: true, detail: 'ready', dockerHealth: 'healthy' }],
      ['a-health-only', { agentId: 'a-health-only', ok: true, detail: 'health answered 200', dockerHealth: null }],
      ['a-hang', { agentId: 'a-hang', ok: false, detail: 'no answer within 300 ms', dockerHealth: 'unhealthy' }],
      ['a-broken', { agentId: 'a-broken', ok: false, detail: 'readyz answered 503', dockerHealth: 'starting' }],
      ['a-no-port', { agentId: 'a-no-port', ok: false, detail: 'no published agent port', dockerHealth: null }],
    ]));
  });
});
