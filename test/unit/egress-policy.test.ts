import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../core/config.ts';
import {
  egressChains,
  egressRuleset,
  formatAllowEntry,
  isRefusedAddress,
  isTargetAllowed,
  parseAllowEntry,
  parseAllowlist,
  type RulesetInput,
} from '../../core/egress-policy.ts';

const base: RulesetInput = {
  family: 4,
  network: 'hangar-agents',
  bridge: 'br-49f45f06c8ce',
  apiPort: 8080,
  apiAddresses: [],
  allow: [],
  nameservers: ['10.255.255.53'],
  forwardHook: 'DOCKER-USER',
  jumpsPresent: { input: false, forward: false },
};

describe('egress allowlist entries', () => {
  it('parses and canonicalises every form', () => {
    expect(parseAllowEntry('host:11434')).toEqual({ kind: 'host', port: 11434 });
    expect(parseAllowEntry(' 10.1.2.3 ')).toEqual({ kind: 'cidr', family: 4, cidr: '10.1.2.3/32' });
    expect(parseAllowEntry('10.1.2.3:8000')).toEqual({ kind: 'cidr', family: 4, cidr: '10.1.2.3/32', port: 8000 });
    expect(parseAllowEntry('192.168.7.9/24:443')).toEqual({ kind: 'cidr', family: 4, cidr: '192.168.7.0/24', port: 443 });
    expect(parseAllowEntry('fd00:0:0::1/64')).toEqual({ kind: 'cidr', family: 6, cidr: 'fd00::/64' });
    expect(parseAllowEntry('[fd00::5]:8080')).toEqual({ kind: 'cidr', family: 6, cidr: 'fd00::5/128', port: 8080 });
    expect(['host:1', '10.0.0.0/8', '10.0.0.0/8:80', 'fd00::/8', '[fd00::/8]:80'].map((t) => formatAllowEntry(parseAllowEntry(t)))).toEqual([
      'host:1', '10.0.0.0/8', '10.0.0.0/8:80', 'fd00::/8', '[fd00::/8]:80',
    ]);
  });

  it('rejects what is not an entry, all problems at once', () => {
    for (const bad of ['host:0', 'host:65536', 'host:x', 'example.com', '10.0.0.0/33', '10.1:80', '1.2.3.4:99999', '10.0.0.1:', '-j ACCEPT']) {
      expect(() => parseAllowEntry(bad), bad).toThrow();
    }
    const { entries, problems } = parseAllowlist(['host:1', 'nope', 'host:1', '10.0.0.1/40']);
    expect(entries).toEqual([{ kind: 'host', port: 1 }]);
    expect(problems).toHaveLength(2);
  });

  it('HANGAR_EGRESS_ALLOW and HANGAR_EGRESS_POLICY are checked at boot', () => {
    expect(parseConfig({}).egressPolicy).toBe('on');
    expect(parseConfig({ HANGAR_EGRESS_ALLOW: 'host:11434, 10.0.0.0/8:8000' }).egressAllow).toBe('host:11434, 10.0.0.0/8:8000');
    expect(() => parseConfig({ HANGAR_EGRESS_ALLOW: 'host:11434,bogus' })).toThrow(/HANGAR_EGRESS_ALLOW: "bogus"/);
    expect(() => parseConfig({ HANGAR_EGRESS_POLICY: 'maybe' })).toThrow(/HANGAR_EGRESS_POLICY: must be one of on, off/);
  });
});

describe('refused targets', () => {
  it('refuses private, loopback, link-local and their IPv6 and mapped forms; the internet passes', () => {
    for (const a of ['10.1.2.3', '172.20.0.1', '192.168.1.1', '127.0.0.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', 'fe80::1', 'fd12::1', '::ffff:169.254.169.254', '::ffff:10.0.0.1']) {
      expect(isRefusedAddress(a), a).toBe(true);
    }
    for (const a of ['1.1.1.1', '8.8.8.8', '172.32.0.1', '2606:4700::1111', '::ffff:1.1.1.1']) expect(isRefusedAddress(a), a).toBe(false);
  });

  it('opens exactly what the allowlist names', () => {
    const allow = parseAllowlist(['host:11434', '10.5.0.0/16:8000', '192.168.9.9']).entries;
    expect(isTargetAllowed('127.0.0.1', 11434, allow)).toBe(true);
    expect(isTargetAllowed('127.0.0.1', 11435, allow)).toBe(false);
    // host:<port> is this host only: its own addresses, not a LAN neighbour.
    expect(isTargetAllowed('10.9.9.9', 11434, allow, ['10.9.9.9'])).toBe(true);
    expect(isTargetAllowed('10.9.9.8', 11434, allow, ['10.9.9.9'])).toBe(false);
    expect(isTargetAllowed('10.5.3.4', 8000, allow)).toBe(true);
    expect(isTargetAllowed('10.5.3.4', 8001, allow)).toBe(false);
    expect(isTargetAllowed('10.6.3.4', 8000, allow)).toBe(false);
    expect(isTargetAllowed('192.168.9.9', 1, allow)).toBe(true);
    expect(isTargetAllowed('169.254.169.254', 80, allow)).toBe(false);
    expect(isTargetAllowed('1.1.1.1', 443, [])).toBe(true);
  });
});

describe('iptables ruleset', () => {
  it('is one transaction that (re)declares the two chains and jumps to them from INPUT and DOCKER-USER', () => {
    const text = egressRuleset(base);
    const { input, forward } = egressChains(base.bridge);
    const lines = text.split('\n');
    expect(lines[0]).toBe('*filter');
    expect(lines.slice(1, 3)).toEqual([`:${input} - [0:0]`, `:${forward} - [0:0]`]);
    expect(lines.at(-2)).toBe('COMMIT');
    expect(lines).toContain(`-I INPUT 1 -i br-49f45f06c8ce -m comment --comment hangar-egress:hangar-agents -j ${input}`);
    expect(lines).toContain(`-I DOCKER-USER 1 -i br-49f45f06c8ce -m comment --comment hangar-egress:hangar-agents -j ${forward}`);
    // Re-applying when the jumps exist adds none: same chains, same rules.
    const again = egressRuleset({ ...base, jumpsPresent: { input: true, forward: true } });
    expect(again.split('\n').filter((l) => l.startsWith('-I '))).toEqual([]);
    expect(again.split('\n').filter((l) => l.startsWith('-A '))).toEqual(lines.filter((l) => l.startsWith('-A ')));
  });

  it('to the host: replies and the API port only, then refuse; through the host: other agents and refused ranges are refused, the rest returns to Docker', () => {
    const { input, forward } = egressChains(base.bridge);
    const lines = egressRuleset(base).split('\n');
    expect(lines.filter((l) => l.startsWith(`-A ${input} `)).map((l) => l.slice(input.length + 4))).toEqual([
      '-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
      '-p tcp --dport 8080 -j ACCEPT',
      '-d 10.255.255.53/32 -p udp --dport 53 -j ACCEPT',
      '-d 10.255.255.53/32 -p tcp --dport 53 -j ACCEPT',
      '-j REJECT --reject-with icmp-admin-prohibited',
    ]);
    const fwd = lines.filter((l) => l.startsWith(`-A ${forward} `)).map((l) => l.slice(forward.length + 4));
    expect(fwd.slice(0, 4)).toEqual([
      '-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN',
      '-o br-49f45f06c8ce -j REJECT --reject-with icmp-admin-prohibited',
      '-d 10.255.255.53/32 -p udp --dport 53 -j RETURN',
      '-d 10.255.255.53/32 -p tcp --dport 53 -j RETURN',
    ]);
    for (const r of ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16']) {
      expect(fwd).toContain(`-d ${r} -j REJECT --reject-with icmp-admin-prohibited`);
    }
    expect(fwd.at(-1)).toBe('-j RETURN');
    // Nothing in the forward chain ever ACCEPTs: Docker's own rules (ICC off) still decide after ours.
    expect(fwd.some((r) => r.includes('ACCEPT'))).toBe(false);
  });

  it('puts allowlisted host ports and networks before the refusals, in the right chain', () => {
    const allow = parseAllowlist(['host:11434', '10.213.77.77:9000', '192.168.0.0/16', 'fd00::/8']).entries;
    const { input, forward } = egressChains(base.bridge);
    const lines = egressRuleset({ ...base, allow, nameservers: [] }).split('\n');
    const inRules = lines.filter((l) => l.startsWith(`-A ${input} `));
    const fwd = lines.filter((l) => l.startsWith(`-A ${forward} `));
    expect(inRules).toContain(`-A ${input} -p tcp --dport 11434 -j ACCEPT`);
    expect(inRules).toContain(`-A ${input} -d 10.213.77.77/32 -p tcp --dport 9000 -j ACCEPT`);
    expect(inRules).toContain(`-A ${input} -d 192.168.0.0/16 -j ACCEPT`);
    expect(fwd).toContain(`-A ${forward} -d 10.213.77.77/32 -p tcp --dport 9000 -j RETURN`);
    expect(fwd.indexOf(`-A ${forward} -d 192.168.0.0/16 -j RETURN`)).toBeLessThan(fwd.indexOf(`-A ${forward} -d 192.168.0.0/16 -j REJECT --reject-with icmp-admin-prohibited`));
    // host:<port> is the host itself, never a forwarded destination; IPv6 entries stay out of IPv4 rules.
    expect(fwd.join('\n')).not.toContain('11434');
    expect(lines.join('\n')).not.toContain('fd00');
    // Other agents stay refused even when an allowlisted network covers the bridge's subnet.
    expect(fwd.findIndex((l) => l.includes('-o br-'))).toBeLessThan(fwd.findIndex((l) => l.includes('192.168.0.0/16')));
  });

  it('an API on another address is allowed at that address and port only', () => {
    const { input, forward } = egressChains(base.bridge);
    const lines = egressRuleset({ ...base, apiPort: null, apiAddresses: [{ address: '10.0.0.5', port: 443 }] }).split('\n');
    expect(lines).toContain(`-A ${input} -d 10.0.0.5/32 -p tcp --dport 443 -j ACCEPT`);
    expect(lines).toContain(`-A ${forward} -d 10.0.0.5/32 -p tcp --dport 443 -j RETURN`);
    expect(lines.join('\n')).not.toContain('--dport 8080');
  });

  it('IPv6: v6 ranges, neighbour discovery, FORWARD when Docker has no DOCKER-USER for v6', () => {
    const allow = parseAllowlist(['host:11434', '[fd00::7]:8000', '10.0.0.0/8']).entries;
    const { input, forward } = egressChains(base.bridge);
    const text = egressRuleset({ ...base, family: 6, allow, nameservers: ['10.255.255.53', 'fd00::53'], forwardHook: 'FORWARD' });
    expect(text).toContain(`-I FORWARD 1 -i br-49f45f06c8ce -m comment --comment hangar-egress:hangar-agents -j ${forward}`);
    expect(text).toContain(`-A ${input} -p ipv6-icmp --icmpv6-type neighbour-solicitation -j ACCEPT`);
    expect(text).toContain(`-A ${input} -p tcp --dport 11434 -j ACCEPT`);
    expect(text).toContain(`-A ${forward} -d fd00::7/128 -p tcp --dport 8000 -j RETURN`);
    expect(text).toContain(`-A ${forward} -d fd00::53/128 -p udp --dport 53 -j RETURN`);
    for (const r of ['fc00::/7', 'fe80::/10', '::1/128', '::ffff:0:0/96']) expect(text).toContain(`-A ${forward} -d ${r} -j REJECT --reject-with icmp6-adm-prohibited`);
    expect(text).not.toContain('10.0.0.0/8');
    expect(text).not.toContain('10.255.255.53');
  });

  it('names chains per bridge, within iptables\' 28 characters, and refuses names that could inject rules', () => {
    const a = egressChains('br-aaaaaaaaaaaa');
    const b = egressChains('br-bbbbbbbbbbbb');
    expect(a.input).not.toBe(b.input);
    for (const c of [a.input, a.forward]) expect(c.length).toBeLessThanOrEqual(28);
    expect(() => egressRuleset({ ...base, bridge: 'br-x -j ACCEPT' })).toThrow();
    expect(() => egressRuleset({ ...base, network: 'x\n-A INPUT -j ACCEPT' })).toThrow();
  });
});
