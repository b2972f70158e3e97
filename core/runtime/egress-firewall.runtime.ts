import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { egressChains, egressRuleset, jumpComment, type AllowEntry } from '../egress-policy.ts';

// Applies the egress ruleset (core/egress-policy.ts) with the host's
// iptables/ip6tables. Everything goes through iptables-restore --noflush, one
// transaction per family, and `-w` waits for the xtables lock, so Docker and
// other Hangar workers changing rules at the same moment never interleave
// with us.

const execFileAsync = promisify(execFile);
const LOCK_WAIT_SEC = '10';

export interface EgressTarget {
  network: string;
  bridge: string;
  /** IPv6 rules too (the network has IPv6 enabled). */
  ipv6: boolean;
  apiPort: number | null;
  apiAddresses: Array<{ address: string; port: number }>;
  allow: readonly AllowEntry[];
  nameservers: readonly string[];
}

type Bin = 'iptables' | 'ip6tables';

export interface EgressFirewall {
  /** null when iptables can be used here; else why not, for the operator. */
  probe(): Promise<string | null>;
  apply(target: EgressTarget): Promise<void>;
  /** Removes every jump and chain installed for a network (its bridge may be gone already). */
  remove(network: string): Promise<void>;
  /** The current rules of the network's chains, for diagnostics and tests. */
  show(bridge: string, family?: 4 | 6): Promise<string[]>;
}

const comm = (rule: string) => /--comment "?hangar-egress:([^"\s]+)"?/.exec(rule)?.[1] ?? null;
const target = (rule: string) => /-j (\S+)\s*$/.exec(rule)?.[1] ?? null;
const inIface = (rule: string) => /-i (\S+)/.exec(rule)?.[1] ?? null;

export function createEgressFirewall(): EgressFirewall {
  async function run(bin: Bin, args: string[]): Promise<string> {
    const { stdout } = await execFileAsync(bin, ['-w', LOCK_WAIT_SEC, ...args], { timeout: 30_000 });
    return stdout;
  }

  async function restore(bin: Bin, text: string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(`${bin}-restore`, ['-w', LOCK_WAIT_SEC, '--noflush'], { stdio: ['pipe', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      child.once('error', reject);
      child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${bin}-restore failed (${code}): ${stderr.trim()}\n${text}`))));
      child.stdin.end(text);
    });
  }

  const rules = async (bin: Bin, chain: string) =>
    (await run(bin, ['-S', chain])).split('\n').filter((l) => l.startsWith(`-A ${chain} `));
  const chainExists = (bin: Bin, chain: string) => run(bin, ['-S', chain]).then(() => true, () => false);
  const forwardHook = async (bin: Bin) => ((await chainExists(bin, 'DOCKER-USER')) ? 'DOCKER-USER' : 'FORWARD') as 'DOCKER-USER' | 'FORWARD';

  /**
   * Drops jumps that are not the one current jump for `keep`: duplicates
   * (two workers applied at once), jumps of an older bridge of the same
   * network, and jumps whose bridge no longer exists (a network removed
   * while no worker watched). Their chains go with them.
   */
  async function prune(bin: Bin, hooks: string[], select: (rule: string) => boolean, keepChains: Set<string>) {
    const del: string[] = [];
    const drop = new Set<string>();
    for (const hook of hooks) {
      const kept = new Set<string>();
      for (const rule of await rules(bin, hook)) {
        if (!comm(rule) || !select(rule)) continue;
        const chain = target(rule);
        if (chain && keepChains.has(chain) && !kept.has(chain)) {
          kept.add(chain);
          continue;
        }
        del.push(rule.replace(/^-A /, '-D '));
        if (chain && !keepChains.has(chain)) drop.add(chain);
      }
    }
    if (!del.length) return;
    const text = ['*filter', ...del, ...[...drop].flatMap((c) => [`-F ${c}`, `-X ${c}`]), 'COMMIT', ''].join('\n');
    await restore(bin, text).catch(async () => {
      // A chain still referenced elsewhere (another worker's stale jump) cannot be deleted: drop the jumps only.
      await restore(bin, ['*filter', ...del, 'COMMIT', ''].join('\n'));
    });
  }

  return {
    async probe() {
      try {
        await run('iptables', ['-S', 'INPUT']);
      } catch (err) {
        const e = err as NodeJS.ErrnoException & { stderr?: string };
        if (e.code === 'ENOENT') return 'the iptables command is not installed (apt-get install iptables)';
        return `iptables cannot be used here: ${(e.stderr || e.message).trim()} (the Docker-host worker needs root or CAP_NET_ADMIN in the host's network namespace)`;
      }
      if (!(await chainExists('iptables', 'DOCKER-USER'))) {
        return 'the DOCKER-USER chain is missing: is this engine\'s dockerd running with iptables management on (the default)?';
      }
      return null;
    },

    async apply(t) {
      const chains = egressChains(t.bridge);
      for (const family of t.ipv6 ? ([4, 6] as const) : ([4] as const)) {
        const bin: Bin = family === 4 ? 'iptables' : 'ip6tables';
        const hook = await forwardHook(bin);
        const has = async (chain: string, hookChain: string) =>
          (await rules(bin, hookChain)).some((r) => inIface(r) === t.bridge && target(r) === chain);
        await restore(bin, egressRuleset({
          family,
          network: t.network,
          bridge: t.bridge,
          apiPort: t.apiPort,
          apiAddresses: t.apiAddresses,
          allow: t.allow,
          nameservers: t.nameservers,
          forwardHook: hook,
          jumpsPresent: { input: await has(chains.input, 'INPUT'), forward: await has(chains.forward, hook) },
        }));
        const gone = (rule: string) => {
          const iface = inIface(rule);
          return iface !== null && !existsSync(`/sys/class/net/${iface}`);
        };
        await prune(bin, ['INPUT', hook], (r) => comm(r) === t.network || gone(r), new Set([chains.input, chains.forward]));
      }
    },

    async remove(network) {
      for (const bin of ['iptables', 'ip6tables'] as const) {
        const usable = await run(bin, ['-S', 'INPUT']).then(() => true, () => false);
        if (!usable) continue;
        await prune(bin, ['INPUT', await forwardHook(bin)], (r) => comm(r) === network, new Set());
      }
    },

    async show(bridge, family = 4) {
      const bin: Bin = family === 4 ? 'iptables' : 'ip6tables';
      const { input, forward } = egressChains(bridge);
      const out: string[] = [];
      for (const chain of [input, forward]) out.push(...(await rules(bin, chain).catch(() => [])));
      return out;
    },
  };
}
