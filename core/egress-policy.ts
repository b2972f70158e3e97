import { createHash } from 'node:crypto';
import ipaddr from 'ipaddr.js';

// What agent containers may reach, as pure functions: the admin allowlist's
// grammar, the ranges refused by default, and the iptables-restore text the
// Docker-host worker applies (core/runtime/egress-firewall.runtime.ts runs
// it). Hangar's own provider test checks targets against the same lists, so
// "refused" means the same thing on both sides.

/** One allowlist entry: a port on the Docker host itself, or a network (optionally one port of it). */
export type AllowEntry =
  | { kind: 'host'; port: number }
  | { kind: 'cidr'; family: 4 | 6; cidr: string; port?: number };

/**
 * Never reachable from an agent unless allowlisted: private, loopback,
 * link-local, carrier-grade NAT, documentation/benchmark and reserved
 * blocks, multicast and broadcast. Everything else is "the public internet".
 */
export const REFUSED_V4 = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.0.2.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4',
  '240.0.0.0/4',
] as const;

/** IPv6 equivalents, plus the prefixes that embed an IPv4 address (mapped, NAT64, 6to4, Teredo) and could smuggle a private one. */
export const REFUSED_V6 = [
  '::/128',
  '::1/128',
  '::ffff:0:0/96',
  '64:ff9b::/96',
  '64:ff9b:1::/48',
  '100::/64',
  '2001::/32',
  '2001:db8::/32',
  '2002::/16',
  'fc00::/7',
  'fe80::/10',
  'ff00::/8',
] as const;

const PORT = /^(?:[1-9]\d{0,3}|[1-5]\d{4}|6[0-4]\d{3}|65[0-4]\d{2}|655[0-2]\d|6553[0-5])$/;

export class AllowEntryError extends Error {}

function cidrOf(text: string): { family: 4 | 6; cidr: string } {
  const withBits = text.includes('/') ? text : `${text}/${ipaddr.IPv4.isValidFourPartDecimal(text) ? 32 : 128}`;
  if (!ipaddr.isValidCIDR(withBits)) throw new AllowEntryError(`"${text}" is not an IP address or CIDR`);
  const [addr, bits] = ipaddr.parseCIDR(withBits);
  if (addr.kind() === 'ipv4') {
    if (!ipaddr.IPv4.isValidFourPartDecimal(withBits.split('/')[0]!)) throw new AllowEntryError(`"${text}" is not a dotted-quad IPv4 address`);
    return { family: 4, cidr: `${ipaddr.IPv4.networkAddressFromCIDR(withBits).toString()}/${bits}` };
  }
  return { family: 6, cidr: `${ipaddr.IPv6.networkAddressFromCIDR(withBits).toString()}/${bits}` };
}

/**
 * `host:<port>`, `<ipv4 or CIDR>[:<port>]`, `<ipv6 or CIDR>` or
 * `[<ipv6 or CIDR>]:<port>`. A bare address means that one address.
 */
export function parseAllowEntry(raw: string): AllowEntry {
  const text = raw.trim();
  const host = /^host:(\d+)$/i.exec(text);
  if (host) {
    if (!PORT.test(host[1]!)) throw new AllowEntryError(`"${text}": port must be 1..65535`);
    return { kind: 'host', port: Number(host[1]) };
  }
  let addr = text;
  let port: string | undefined;
  const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(text);
  const v4port = /^([\d./]+):(\d+)$/.exec(text);
  if (bracketed) [, addr, port] = bracketed as unknown as [string, string, string];
  else if (v4port) [, addr, port] = v4port as unknown as [string, string, string];
  if (port !== undefined && !PORT.test(port)) throw new AllowEntryError(`"${text}": port must be 1..65535`);
  const { family, cidr } = cidrOf(addr);
  return { kind: 'cidr', family, cidr, ...(port !== undefined ? { port: Number(port) } : {}) };
}

/** The canonical text of an entry (what is stored and shown). */
export function formatAllowEntry(e: AllowEntry): string {
  if (e.kind === 'host') return `host:${e.port}`;
  if (e.port === undefined) return e.cidr;
  return e.family === 6 ? `[${e.cidr}]:${e.port}` : `${e.cidr}:${e.port}`;
}

/** Parses a whole list; every bad entry is reported at once. */
export function parseAllowlist(entries: readonly string[]): { entries: AllowEntry[]; problems: string[] } {
  const out: AllowEntry[] = [];
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const raw of entries) {
    if (!raw.trim()) continue;
    try {
      const e = parseAllowEntry(raw);
      const key = formatAllowEntry(e);
      if (!seen.has(key)) out.push(e);
      seen.add(key);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  return { entries: out, problems };
}

/** `HANGAR_EGRESS_ALLOW`'s comma-separated form. */
export const splitAllowEnv = (value: string | undefined): string[] =>
  (value ?? '').split(',').map((s) => s.trim()).filter(Boolean);

const inRanges = (addr: ipaddr.IPv4 | ipaddr.IPv6, ranges: readonly string[]) =>
  ranges.some((r) => {
    const [net, bits] = ipaddr.parseCIDR(r);
    return net.kind() === addr.kind() && addr.match(net, bits);
  });

/** An IPv4-mapped IPv6 address is judged as the IPv4 address it carries. */
function normalize(address: string): ipaddr.IPv4 | ipaddr.IPv6 {
  const a = ipaddr.parse(address);
  return a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress() ? (a as ipaddr.IPv6).toIPv4Address() : a;
}

/** True when the address is in a range refused by default (private, loopback, link-local, …). */
export function isRefusedAddress(address: string): boolean {
  const a = normalize(address);
  return inRanges(a, a.kind() === 'ipv4' ? REFUSED_V4 : REFUSED_V6);
}

/**
 * Whether Hangar itself (on the host, outside the bridge policy) may call
 * address:port. `localAddresses` are this host's own addresses, which a
 * `host:<port>` entry opens (loopback always counts as this host).
 */
export function isTargetAllowed(address: string, port: number, allow: readonly AllowEntry[], localAddresses: readonly string[] = []): boolean {
  if (!isRefusedAddress(address)) return true;
  const a = normalize(address);
  const local = a.range() === 'loopback' || localAddresses.some((l) => ipaddr.isValid(l) && normalize(l).toString() === a.toString());
  return allow.some((e) => {
    if (e.kind === 'host') return local && e.port === port;
    if (e.port !== undefined && e.port !== port) return false;
    const [net, bits] = ipaddr.parseCIDR(e.cidr);
    return net.kind() === a.kind() && a.match(net, bits);
  });
}

// ---------------------------------------------------------------------------
// iptables

/** Chains are named after the bridge, so a network that is re-created (new bridge) never inherits old rules. */
export function egressChains(bridge: string): { input: string; forward: string } {
  const h = createHash('sha256').update(bridge).digest('hex').slice(0, 10);
  return { input: `HANGAR-IN-${h}`, forward: `HANGAR-FWD-${h}` };
}

/** Marks every jump Hangar installs, so stale ones (an old bridge of the same network) can be found. */
export const jumpComment = (network: string) => `hangar-egress:${network}`;

export interface RulesetInput {
  family: 4 | 6;
  /** The Docker network's name (for the rule comments). */
  network: string;
  /** Its Linux bridge interface. */
  bridge: string;
  /** Hangar's API port on this host (agents fetch their config there), when the API runs here. */
  apiPort: number | null;
  /** The API at a given address instead (HANGAR_AGENT_API_URL naming another address or host). */
  apiAddresses: Array<{ address: string; port: number }>;
  allow: readonly AllowEntry[];
  /** The host's resolvers: Docker's embedded DNS forwards from the container's namespace to them. */
  nameservers: readonly string[];
  /** Where forwarded traffic is filtered: DOCKER-USER when Docker manages this family's iptables, else FORWARD. */
  forwardHook: 'DOCKER-USER' | 'FORWARD';
  /** Which jumps exist already (re-applying must not add a second one). */
  jumpsPresent: { input: boolean; forward: boolean };
}

const familyOf = (address: string): 4 | 6 => (normalize(address).kind() === 'ipv4' ? 4 : 6);
const addrCidr = (address: string) => {
  const a = normalize(address);
  return `${a.toString()}/${a.kind() === 'ipv4' ? 32 : 128}`;
};

/**
 * The iptables-restore text (to be fed with --noflush) for one family.
 * Declaring the two chains flushes them if they exist, and the whole text is
 * one transaction: traffic sees the old rules or the new, never a gap.
 *
 * INPUT sees what a container sends to the host itself (the gateway, any
 * address of any host interface); DOCKER-USER (FORWARD) sees the rest.
 * Forwarded traffic that is allowed RETURNs, so Docker's own rules (ICC off,
 * network isolation) still apply after ours.
 */
export function egressRuleset(input: RulesetInput): string {
  const { family, bridge, network } = input;
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(bridge)) throw new Error(`"${bridge}" is not a bridge interface name`);
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(network)) throw new Error(`"${network}" is not a Docker network name`);
  const { input: IN, forward: FWD } = egressChains(bridge);
  const reject = family === 4 ? 'REJECT --reject-with icmp-admin-prohibited' : 'REJECT --reject-with icmp6-adm-prohibited';
  const tcp = (port: number | undefined) => (port === undefined ? '' : ` -p tcp --dport ${port}`);
  const mine = <T extends { address: string }>(xs: readonly T[]) => xs.filter((x) => familyOf(x.address) === family);
  const cidrs = input.allow.filter((e): e is Extract<AllowEntry, { kind: 'cidr' }> => e.kind === 'cidr' && e.family === family);
  const nameservers = input.nameservers.filter((n) => ipaddr.isValid(n) && familyOf(n) === family);

  const lines = ['*filter', `:${IN} - [0:0]`, `:${FWD} - [0:0]`];
  const inRule = (rule: string) => lines.push(`-A ${IN} ${rule}`);
  const fwdRule = (rule: string) => lines.push(`-A ${FWD} ${rule}`);

  // To the host itself: replies, the API, allowlisted host ports and networks, DNS; nothing else.
  inRule('-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT');
  if (input.apiPort !== null) inRule(`-p tcp --dport ${input.apiPort} -j ACCEPT`);
  for (const a of mine(input.apiAddresses)) inRule(`-d ${addrCidr(a.address)} -p tcp --dport ${a.port} -j ACCEPT`);
  for (const e of input.allow) if (e.kind === 'host') inRule(`-p tcp --dport ${e.port} -j ACCEPT`);
  for (const e of cidrs) inRule(`-d ${e.cidr}${tcp(e.port)} -j ACCEPT`);
  for (const ns of nameservers) for (const proto of ['udp', 'tcp']) inRule(`-d ${addrCidr(ns)} -p ${proto} --dport 53 -j ACCEPT`);
  if (family === 6) {
    // Neighbour discovery: without it IPv6 on the bridge stops working at all.
    for (const t of ['router-solicitation', 'neighbour-solicitation', 'neighbour-advertisement']) inRule(`-p ipv6-icmp --icmpv6-type ${t} -j ACCEPT`);
  }
  inRule(`-j ${reject}`);

  // Through the host: replies pass; other agents never; allowlisted networks, a remote API and DNS pass; refused ranges are refused.
  fwdRule('-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN');
  fwdRule(`-o ${bridge} -j ${reject}`);
  for (const a of mine(input.apiAddresses)) fwdRule(`-d ${addrCidr(a.address)} -p tcp --dport ${a.port} -j RETURN`);
  for (const e of cidrs) fwdRule(`-d ${e.cidr}${tcp(e.port)} -j RETURN`);
  for (const ns of nameservers) for (const proto of ['udp', 'tcp']) fwdRule(`-d ${addrCidr(ns)} -p ${proto} --dport 53 -j RETURN`);
  for (const r of family === 4 ? REFUSED_V4 : REFUSED_V6) fwdRule(`-d ${r} -j ${reject}`);
  fwdRule('-j RETURN');

  const comment = `-m comment --comment ${jumpComment(network)}`;
  if (!input.jumpsPresent.input) lines.push(`-I INPUT 1 -i ${bridge} ${comment} -j ${IN}`);
  if (!input.jumpsPresent.forward) lines.push(`-I ${input.forwardHook} 1 -i ${bridge} ${comment} -j ${FWD}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}
