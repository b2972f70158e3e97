import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import Docker from 'dockerode';
import { AGENT_PORT } from '../../core/contracts/agent.contract.ts';
import type { StackInfo } from '../support/global-setup.ts';
import { freePort } from '../support/ports.ts';

// The contract between `test/bench/run.bench.ts` and the bench modules. A
// module is any `test/bench/*.bench.ts` but run.bench.ts itself; its default
// export takes a BenchContext and returns rows. The runner starts the stack
// once, runs the modules in file-name order (BENCH_ONLY / BENCH_SKIP pick them
// by name: `proxy`, `start` …), prints one table and writes it as JSON to
// bench-results/. A module owns everything it creates and removes it before it
// returns, so the next one measures a quiet machine.

/** How a row's ratio (value / baseline) or delta (value − baseline) is judged. */
export interface BenchGoal {
  on: 'ratio' | 'delta';
  op: '<=' | '>=';
  target: number;
}

export interface BenchRow {
  /** What is compared, e.g. "chat plain req/s: Hangar / direct". */
  name: string;
  /** Hangar's figure. */
  value: number;
  /** The peer's figure, measured in the same run (or a fixed budget, said in `name`). */
  baseline: number;
  /** value / baseline. */
  ratio: number;
  /** null: informational, nothing to meet. */
  goal: BenchGoal | null;
  unit: string;
  /** Whether the goal was met (null without a goal). */
  pass: boolean | null;
  /** Which module made it (set by the runner). */
  module?: string;
  /** Sample sizes, spread, anything the figure needs to be read right. */
  note?: string;
}

export interface BenchContext {
  stack: StackInfo;
  docker: Docker;
  /** Progress lines: to stderr, so stdout ends with the one table. */
  log(message: string): void;
}

export type BenchModule = (ctx: BenchContext) => Promise<BenchRow[]>;

/** A row with its ratio and verdict computed. */
export function row(name: string, value: number, baseline: number, unit: string, goal: BenchGoal | null, note?: string): BenchRow {
  const ratio = baseline === 0 ? Number.NaN : value / baseline;
  let pass: boolean | null = null;
  if (goal) {
    const x = goal.on === 'ratio' ? ratio : value - baseline;
    pass = goal.op === '<=' ? x <= goal.target : x >= goal.target;
  }
  return { name, value, baseline, ratio, goal, unit, pass, ...(note ? { note } : {}) };
}

export const atMost = (target: number, on: BenchGoal['on'] = 'ratio'): BenchGoal => ({ on, op: '<=', target });
export const atLeast = (target: number, on: BenchGoal['on'] = 'ratio'): BenchGoal => ({ on, op: '>=', target });

export function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const require = createRequire(import.meta.url);

export interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  non2xx: number;
  errors: number;
}

/**
 * autocannon (npm) in a process of its own, so the load generator never
 * shares an event loop with what it measures. Throws when any request
 * failed: a ratio over failed requests would flatter whoever failed fastest.
 */
export async function autocannon(opts: { url: string; method?: string; headers?: Record<string, string>; body?: string; connections: number; seconds: number }): Promise<LoadResult> {
  const bin = require.resolve('autocannon/autocannon.js');
  const args = [bin, '-j', '-c', String(opts.connections), '-d', String(opts.seconds), '-m', opts.method ?? 'GET'];
  for (const [k, v] of Object.entries(opts.headers ?? {})) args.push('-H', `${k}=${v}`);
  if (opts.body !== undefined) args.push('-b', opts.body);
  args.push(opts.url);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  if (code !== 0) throw new Error(`autocannon exited ${code}: ${err}`);
  const r = JSON.parse(out.trim().split('\n').pop()!) as {
    requests: { average: number; total: number };
    latency: { p50: number; p99: number };
    non2xx: number;
    errors: number;
    timeouts: number;
  };
  const result = { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, requests: r.requests.total, non2xx: r.non2xx, errors: r.errors + r.timeouts };
  if (result.non2xx || result.errors) throw new Error(`load against ${opts.url}: ${result.non2xx} non-2xx answers, ${result.errors} errors of ${result.requests}`);
  return result;
}

/**
 * CPU time (user + system, ms) a process has used so far, from /proc: a
 * proxy's cost per request that holds better than req/s on a busy machine.
 */
export async function cpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command (which may hold spaces) start at state; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}
/** A process's resident memory now (MB), from /proc. */
export async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

/** USER_HZ: 100 on Linux whatever the kernel's HZ. */
const CLOCK_TICKS = 100;

/** All CPUs' busy and total jiffies so far, from /proc/stat's first line. */
async function cpuTotals(): Promise<{ busy: number; total: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  // idle and iowait are the 4th and 5th fields.
  return { busy: total - v[3] - (v[4] ?? 0), total };
}

/**
 * Waits until the machine is quiet: under `threshold` of all its CPU busy
 * over a second, two seconds in a row, for at most `maxMs`. Modules run one
 * after another, and one can leave work behind that it does not wait for
 * (Temporal's server finishing a thousand terminated workflows, Postgres
 * vacuuming ten thousand deleted rows, Docker removing two hundred
 * containers); without this, that work is measured as the next module's
 * noise. Returns what it saw, so a run that never got quiet says so.
 */
export async function settle(maxMs = 60_000, threshold = 0.15): Promise<{ waitedMs: number; busy: number; quiet: boolean }> {
  const t0 = performance.now();
  let calm = 0;
  let busy = 1;
  for (let i = 0; i < Math.ceil(maxMs / 1000) && performance.now() - t0 < maxMs; i++) {
    const a = await cpuTotals();
    await new Promise((r) => setTimeout(r, 1000));
    const b = await cpuTotals();
    busy = (b.busy - a.busy) / Math.max(1, b.total - a.total);
    calm = busy < threshold ? calm + 1 : 0;
    if (calm >= 2) return { waitedMs: performance.now() - t0, busy, quiet: true };
  }
  return { waitedMs: performance.now() - t0, busy, quiet: false };
}

/** configurable-http-proxy (JupyterHub's proxy, npm) in its own process, routing everything to `target`. */
export async function startConfigurableHttpProxy(target: string): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  const bin = require.resolve('configurable-http-proxy/bin/configurable-http-proxy');
  const [port, apiPort] = [await freePort(), await freePort()];
  const child: ChildProcess = spawn(process.execPath, [bin, '--ip', '127.0.0.1', '--port', String(port), '--api-ip', '127.0.0.1', '--api-port', String(apiPort), '--default-target', target, '--log-level', 'error'], {
    env: { ...process.env, CONFIGPROXY_AUTH_TOKEN: `bench-${process.pid}` },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`configurable-http-proxy exited: ${stderr}`);
    // Any HTTP answer means it listens (the target may well answer 401 to a bare GET).
    if (await fetch(`${url}/health`).then(() => true, () => false)) break;
    if (i > 200) throw new Error(`configurable-http-proxy not up: ${stderr}`);
    await sleep(50);
  }
  return {
    url,
    pid: child.pid!,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

const fmt = (n: number) => (Number.isNaN(n) ? '–' : Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2));

export function goalText(g: BenchGoal | null): string {
  if (!g) return '';
  const op = g.op === '<=' ? '≤' : '≥';
  return g.on === 'ratio' ? `${op} ${g.target.toFixed(2)}×` : `Δ ${op} ${g.target}`;
}

/** The one table: fixed-width columns, a verdict per row. */
export function formatTable(rows: BenchRow[]): string {
  const head = ['module', 'comparison', 'Hangar', 'peer', 'unit', 'ratio', 'goal', ''];
  const body = rows.map((r) => [
    r.module ?? '',
    r.name,
    fmt(r.value),
    fmt(r.baseline),
    r.unit,
    `${fmt(r.ratio)}×`,
    goalText(r.goal),
    r.pass === null ? '' : r.pass ? 'ok' : 'MISSED',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i >= 2 && i <= 5 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

// The bare Docker peer of Hangar's starts (start and storm modules).

/** The least a bare container needs to boot: a static config answer. */
export async function staticConfigServer() {
  const body = JSON.stringify({ gateway: { auth: { mode: 'token', token: 'bench-gateway-token' } }, agents: { defaults: { model: { primary: null, fallbacks: [] } } }, models: { providers: {} } });
  const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(body));
  await new Promise<void>((r) => server.listen(0, '0.0.0.0', r));
  return { port: (server.address() as AddressInfo).port, close: () => new Promise((r) => server.close(r)) };
}

/**
 * What the bare path creates. `full`: the container exactly as Hangar makes
 * an agent's (user, read-only root, tmpfs, limits, a fresh named volume, a
 * bridge with inter-container traffic off), so the ratio is Hangar's own
 * overhead; otherwise the least that boots the image (informational).
 */
export function bareSpec(image: string, configPort: number, name: string, network: string | null): Docker.ContainerCreateOptions {
  const base = {
    name,
    Image: image,
    Env: [`HANGAR_CONFIG_URL=http://host.docker.internal:${configPort}/`, 'HANGAR_GATEWAY_TOKEN=bench'],
    ExposedPorts: { [`${AGENT_PORT}/tcp`]: {} },
  };
  const hostConfig = {
    PortBindings: { [`${AGENT_PORT}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: '' }] },
    ExtraHosts: ['host.docker.internal:host-gateway'],
  };
  if (!network) return { ...base, HostConfig: hostConfig };
  return {
    ...base,
    User: '10001:10001',
    HostConfig: {
      ...hostConfig,
      Mounts: [{ Type: 'volume', Source: `${name}-data`, Target: '/data' }],
      NetworkMode: network,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      ReadonlyRootfs: true,
      Tmpfs: { '/tmp': 'rw,noexec,nosuid,size=16m' },
      Memory: 512 * 1024 * 1024,
      NanoCpus: 1e9,
      PidsLimit: 256,
      RestartPolicy: { Name: 'no' },
    },
  };
}

/** Polled as often as Hangar polls a starting agent (every 5 ms), so neither side loses time to its poll. */
export async function untilHealthy(port: string): Promise<void> {
  for (let k = 0; k < 20_000; k++) {
    if (await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok, () => false)) return;
    await sleep(5);
  }
  throw new Error('bare container never became healthy');
}

export async function bareColdStart(docker: Docker, image: string, configPort: number, i: number, network: string | null = null): Promise<number> {
  const name = `hangar-bench-bare-${process.pid}-${i}${network ? '-full' : ''}`;
  const t0 = performance.now();
  const c = await docker.createContainer(bareSpec(image, configPort, name, network));
  try {
    await c.start();
    await untilHealthy((await c.inspect()).NetworkSettings.Ports[`${AGENT_PORT}/tcp`]![0].HostPort);
    return performance.now() - t0;
  } finally {
    await c.remove({ force: true });
    if (network) await docker.getVolume(`${name}-data`).remove().catch(() => undefined);
  }
}

