import { lookup } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import type Docker from 'dockerode';
import { agentApiBase, type HangarConfig } from '../core/config.ts';
import type { EgressReport } from '../core/contracts/egress.contract.ts';
import { formatAllowEntry, parseAllowlist, type AllowEntry } from '../core/egress-policy.ts';
import type { EgressFirewall, EgressTarget } from '../core/runtime/egress-firewall.runtime.ts';
import type { AgentNetworks } from './docker.activities.ts';

// The egress policy of one Docker host, owned by that host's worker: applied
// at the worker's start, whenever the allowlist changes (the
// `applyEgressPolicy` activity on `docker-<hostId>`), and before an agent
// joins a network the policy has not seen (a re-created network has a new
// bridge).

export interface EgressEnforcerDeps {
  docker: Docker;
  networks: AgentNetworks;
  firewall: EgressFirewall;
  config: HangarConfig;
  apiPort?: () => number;
  /** The admin allowlist, read fresh on every apply. */
  loadAllowlist: () => Promise<AllowEntry[]>;
  log: (msg: string) => void;
  resolvConfPath?: string;
}

export type EgressEnforcer = ReturnType<typeof createEgressEnforcer>;

/** The host's resolvers that Docker's embedded DNS forwards to from inside a container (loopback ones it queries from the host). */
export async function containerNameservers(resolvConfPath = '/etc/resolv.conf'): Promise<string[]> {
  const text = await readFile(resolvConfPath, 'utf8').catch(() => '');
  return [...text.matchAll(/^\s*nameserver\s+(\S+)/gm)]
    .map((m) => m[1]!.replace(/%.*$/, ''))
    .filter((a) => net.isIP(a) && !/^127\./.test(a) && a !== '::1');
}

export function createEgressEnforcer(deps: EgressEnforcerDeps) {
  const { docker, networks, firewall, config, log } = deps;
  let state: 'on' | 'off' | 'unavailable' = config.egressPolicy === 'off' ? 'off' : 'on';
  let reason: string | null = state === 'off' ? 'HANGAR_EGRESS_POLICY=off' : null;
  let allow: AllowEntry[] | null = null;
  /** network name → the network id whose bridge has the current rules. */
  const applied = new Map<string, string>();
  // One apply at a time in this process: iptables-restore transactions are atomic, but check-then-insert of a jump is not.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = queue.then(fn, fn);
    queue = next.catch(() => undefined);
    return next;
  };

  async function apiTarget(): Promise<Pick<EgressTarget, 'apiPort' | 'apiAddresses'>> {
    const url = new URL(agentApiBase(config, deps.apiPort?.()));
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (host === 'host.docker.internal') return { apiPort: port, apiAddresses: [] };
    const addresses = net.isIP(host) ? [host] : (await lookup(host, { all: true })).map((a) => a.address);
    return { apiPort: null, apiAddresses: addresses.map((address) => ({ address, port })) };
  }

  async function applyTo(name: string, networkId: string): Promise<{ network: string; bridge: string }> {
    const info = await docker.getNetwork(networkId).inspect();
    const bridge = info.Options?.['com.docker.network.bridge.name'] ?? `br-${String(info.Id).slice(0, 12)}`;
    allow ??= await deps.loadAllowlist();
    await firewall.apply({
      network: name,
      bridge,
      ipv6: Boolean(info.EnableIPv6),
      ...(await apiTarget()),
      allow,
      nameservers: await containerNameservers(deps.resolvConfPath),
    });
    applied.set(name, networkId);
    return { network: name, bridge };
  }

  return {
    /**
     * At the worker's start. Production refuses to run a Docker-host worker
     * that cannot enforce the policy; development and test say so loudly
     * and go on (a laptop's engine may have no iptables to speak of).
     */
    async start(): Promise<EgressReport> {
      if (state === 'off') {
        log('egress policy OFF (HANGAR_EGRESS_POLICY=off): agents can reach this host, the LAN and link-local addresses');
        return this.report([]);
      }
      const why = await firewall.probe();
      if (why) {
        if (config.mode === 'production') {
          throw new Error(`agent egress policy cannot be enforced: ${why}. Refusing to start the Docker-host worker; set HANGAR_EGRESS_POLICY=off only if this engine is protected otherwise.`);
        }
        state = 'unavailable';
        reason = why;
        log(`WARNING: agent egress policy NOT enforced: ${why}. Agents can reach this host, the LAN and link-local addresses (production refuses to start like this).`);
        return this.report([]);
      }
      return this.apply();
    },

    /** Reads the allowlist again and applies it to the configured network and every network seen since. */
    apply(): Promise<EgressReport> {
      return serial(async () => {
        if (state !== 'on') return this.report([]);
        allow = await deps.loadAllowlist();
        const names = new Set([config.agentNetwork, ...applied.keys()]);
        const done = [];
        for (const name of names) done.push(await applyTo(name, await networks.ensure(name)));
        log(`egress policy applied to ${done.map((d) => `${d.network} (${d.bridge})`).join(', ')}; allowlist: ${allow.map(formatAllowEntry).join(', ') || 'empty'}`);
        return this.report(done);
      });
    },

    /** Before an agent joins a network: a no-op when that network's current bridge has the rules. */
    async ensureFor(name: string, networkId: string): Promise<void> {
      if (state !== 'on' || applied.get(name) === networkId) return;
      try {
        await serial(() => (applied.get(name) === networkId ? Promise.resolve(null) : applyTo(name, networkId)));
      } catch (err) {
        // Retryable: an iptables lock or a network removed mid-way passes; an agent never starts unfiltered.
        throw ApplicationFailure.retryable(`egress policy for network ${name} could not be applied: ${(err as Error).message}`, 'egress_policy_failed');
      }
    },

    report(done: Array<{ network: string; bridge: string }>): EgressReport {
      return {
        hostId: config.dockerHostId,
        enforced: state === 'on',
        reason,
        networks: done,
        allow: (allow ?? []).map(formatAllowEntry),
      };
    },
  };
}

export function createEgressActivities({ enforcer }: { enforcer: EgressEnforcer }) {
  return {
    /** Re-applies this host's policy with the allowlist as saved now (so an older request still applies the newest list). */
    async applyEgressPolicy(): Promise<EgressReport> {
      return enforcer.apply();
    },
  };
}
