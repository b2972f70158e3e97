import type Docker from 'dockerode';
import { describe, expect, it } from 'vitest';
import type { AgentNetworks } from '../../activities/docker.activities.ts';
import { createEgressEnforcer } from '../../activities/egress.activities.ts';
import { parseConfig } from '../../core/config.ts';
import { parseAllowlist } from '../../core/egress-policy.ts';
import type { EgressFirewall, EgressTarget } from '../../core/runtime/egress-firewall.runtime.ts';

// The Docker-host worker's side of the policy, with a fake engine and a fake
// iptables: what it applies, when, and what it does when it cannot.

function setup(env: Record<string, string>, probe: string | null = null) {
  const applied: EgressTarget[] = [];
  const logs: string[] = [];
  const firewall: EgressFirewall = {
    probe: async () => probe,
    apply: async (t) => void applied.push(t),
    remove: async () => undefined,
    show: async () => [],
  };
  let id = 'net-1';
  const docker = {
    getNetwork: (nid: string) => ({ inspect: async () => ({ Id: `${nid}0123456789abcdef`, Options: {}, EnableIPv6: false }) }),
  } as unknown as Docker;
  const networks = { ensure: async () => id } as unknown as AgentNetworks;
  let allow = parseAllowlist(['host:11434']).entries;
  const enforcer = createEgressEnforcer({
    docker,
    networks,
    firewall,
    config: parseConfig({ PORT: '8080', ...env }),
    loadAllowlist: async () => allow,
    log: (m) => logs.push(m),
    resolvConfPath: '/nonexistent',
  });
  return { enforcer, applied, logs, setNetwork: (n: string) => (id = n), setAllow: (a: string[]) => (allow = parseAllowlist(a).entries) };
}

describe('egress enforcer', () => {
  it('applies at start to the configured network, with the API port and the allowlist', async () => {
    const { enforcer, applied } = setup({ HANGAR_AGENT_NETWORK: 'agents-x' });
    const report = await enforcer.start();
    expect(report).toMatchObject({ enforced: true, allow: ['host:11434'], networks: [{ network: 'agents-x', bridge: 'br-net-10123456' }] });
    expect(applied).toEqual([expect.objectContaining({ network: 'agents-x', bridge: 'br-net-10123456', apiPort: 8080, apiAddresses: [], ipv6: false })]);
  });

  it('re-applies only for a network (re)created since, and on request with the newest allowlist', async () => {
    const { enforcer, applied, setNetwork, setAllow } = setup({});
    await enforcer.start();
    await enforcer.ensureFor('hangar-agents', 'net-1');
    expect(applied).toHaveLength(1);
    setNetwork('net-2');
    await enforcer.ensureFor('hangar-agents', 'net-2');
    expect(applied.map((a) => a.bridge)).toEqual(['br-net-10123456', 'br-net-20123456']);
    setAllow(['host:1', '10.0.0.0/8:80']);
    const report = await enforcer.apply();
    expect(report.allow).toEqual(['host:1', '10.0.0.0/8:80']);
    expect(applied).toHaveLength(3);
  });

  it('an API elsewhere is allowed at its address, not as a host port', async () => {
    const { enforcer, applied } = setup({ HANGAR_AGENT_API_URL: 'https://10.0.0.5:8443' });
    await enforcer.start();
    expect(applied[0]).toMatchObject({ apiPort: null, apiAddresses: [{ address: '10.0.0.5', port: 8443 }] });
  });

  it('without usable iptables: production refuses to start, development warns loudly and applies nothing', async () => {
    const prod = setup({ HANGAR_MODE: 'production', HANGAR_SECRET_KEY: 'x'.repeat(32), DATABASE_URL: 'postgres://x/y', TEMPORAL_ADDRESS: 'x:7233' }, 'the iptables command is not installed');
    await expect(prod.enforcer.start()).rejects.toThrow(/cannot be enforced: the iptables command is not installed.*Refusing to start/);
    const dev = setup({}, 'the iptables command is not installed');
    expect(await dev.enforcer.start()).toMatchObject({ enforced: false, reason: 'the iptables command is not installed' });
    expect(dev.logs.join('\n')).toMatch(/WARNING: agent egress policy NOT enforced/);
    await dev.enforcer.ensureFor('hangar-agents', 'net-1');
    expect(dev.applied).toHaveLength(0);
  });

  it('HANGAR_EGRESS_POLICY=off applies nothing and says so', async () => {
    const { enforcer, applied, logs } = setup({ HANGAR_EGRESS_POLICY: 'off' });
    expect(await enforcer.start()).toMatchObject({ enforced: false, reason: 'HANGAR_EGRESS_POLICY=off' });
    expect(await enforcer.apply()).toMatchObject({ enforced: false });
    expect(applied).toHaveLength(0);
    expect(logs.join('\n')).toMatch(/egress policy OFF/);
  });
});
