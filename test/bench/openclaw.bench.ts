import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type Docker from 'dockerode';
import { AGENT_PORT } from '../../core/contracts/agent.contract.ts';
import { buildAgentImage } from '../../core/runtime/stack.runtime.ts';
import { buildOpenClawConfig, workspaceFiles } from '../../core/services/openclaw-config.service.ts';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import { createTestUser, removeAgentsFromDocker, spawnApi, startHangarOn, type Hangar } from '../support/hangar.runtime.ts';
import { freePort } from '../support/ports.ts';
import { giveProvider } from '../support/scenario.ts';
import { row, type BenchContext, type BenchRow } from './bench.harness.ts';

// `npm run bench`, OpenClaw part: the real runtime behind Hangar against the
// same image run bare, measured in this run on this machine. Cold start: a
// new user's agent through Hangar's API (fresh volume, so OpenClaw's first
// boot) vs `docker create`+start of the same image with the same limits and a
// fresh volume, to healthy. Chat: through Hangar's proxy vs straight to the
// gateway's /v1/chat/completions, one new OpenClaw session per request.
const IMAGE = process.env.HANGAR_TEST_OPENCLAW_IMAGE ?? 'hangar/openclaw:latest';
const STARTS = Number(process.env.BENCH_OPENCLAW_STARTS ?? 3);
const CHATS = Number(process.env.BENCH_OPENCLAW_CHATS ?? 40);
const CONCURRENCY = Number(process.env.BENCH_OPENCLAW_CONCURRENCY ?? 2);

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const secs = (n: number) => `${(n / 1000).toFixed(2)} s`;
const ms = (n: number) => `${n.toFixed(0)} ms`;

/** What Hangar's config endpoint would answer, for the bare containers. */
async function configServer(upstreamBaseUrl: string) {
  const config = JSON.stringify(buildOpenClawConfig({
    gatewayToken: 'bench-token',
    providers: [{ name: 'fake', type: 'custom', baseUrl: upstreamBaseUrl, apiKey: 'sk-bench', apiType: 'openai-completions', models: [{ id: 'fake-model' }] }],
    primaryModel: 'fake/fake-model',
    fallbackModels: [],
  }));
  const workspace = JSON.stringify({ files: workspaceFiles(null) });
  const server = http.createServer((req, res) =>
    res.writeHead(200, { 'content-type': 'application/json' }).end(req.url?.endsWith('/workspace') ? workspace : config));
  await new Promise<void>((r) => server.listen(0, '0.0.0.0', r));
  return { port: (server.address() as AddressInfo).port, close: () => new Promise((r) => server.close(r)) };
}

async function bareColdStart(docker: Docker, h: Hangar, configPort: number, i: number): Promise<number> {
  const name = `hangar-bench-openclaw-${process.pid}-${i}`;
  const cfg = h.core.config;
  const t0 = performance.now();
  const c = await docker.createContainer({
    name,
    Image: IMAGE,
    User: '10001:10001',
    Env: [`HANGAR_CONFIG_URL=http://host.docker.internal:${configPort}/cfg`, 'HANGAR_GATEWAY_TOKEN=bench-token'],
    ExposedPorts: { [`${AGENT_PORT}/tcp`]: {} },
    HostConfig: {
      // The same limits and hardening as Hangar's containers: the comparison is of Hangar, not of settings.
      PortBindings: { [`${AGENT_PORT}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: '' }] },
      Mounts: [{ Type: 'volume', Source: `${name}-data`, Target: '/data' }],
      ExtraHosts: ['host.docker.internal:host-gateway'],
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      ReadonlyRootfs: true,
      Tmpfs: { '/tmp': `rw,noexec,nosuid,size=${cfg.agentTmpfsMb}m` },
      Memory: cfg.agentMemoryMb * 1024 * 1024,
      NanoCpus: Math.round(cfg.agentCpus * 1e9),
      PidsLimit: cfg.agentPids,
    },
  });
  try {
    await c.start();
    const port = (await c.inspect()).NetworkSettings.Ports[`${AGENT_PORT}/tcp`]![0].HostPort;
    // Ready as Hangar judges it (/readyz), polled as often as Hangar polls (100 ms).
    for (let k = 0; k < 6000; k++) {
      const ok = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false);
      if (ok) return performance.now() - t0;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('bare OpenClaw container never became healthy');
  } finally {
    await c.remove({ force: true, v: true });
    await docker.getVolume(`${name}-data`).remove().catch(() => undefined);
  }
}

async function loadTest(call: (i: number) => Promise<void>, total: number, concurrency: number) {
  const latencies: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        const s = performance.now();
        await call(i);
        latencies.push(performance.now() - s);
      }
    }),
  );
  return { rps: total / ((performance.now() - t0) / 1000), p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) };
}

export default async function openclawBench({ stack, docker, log }: BenchContext): Promise<BenchRow[]> {
  log(`image ${IMAGE}: building or reusing`);
  await buildAgentImage('openclaw', IMAGE, (m) => log(`image: ${m}`));
  const fake = await startFakeOpenAI({ chunkDelayMs: 0 });
  const config = await configServer(fake.agentBaseUrl);
  let h: Hangar | null = null;
  let stopApi: (() => Promise<void>) | null = null;
  const agentIds: string[] = [];
  try {
    h = await startHangarOn(stack, { LOG_LEVEL: 'error', HANGAR_AGENT_RUNTIME: 'openclaw', HANGAR_AGENT_IMAGE: IMAGE, HANGAR_AGENT_START_TIMEOUT_SEC: '600' });
    // One untimed boot first: page cache and Docker's first-use costs count for neither side.
    await bareColdStart(docker, h, config.port, -1);

    const hangarTimes: number[] = [];
    const bareTimes: number[] = [];
    for (let i = 0; i < STARTS; i++) {
      const user = await createTestUser(h);
      await giveProvider(user, fake);
      const t0 = performance.now();
      const res = await user.api('/api/me/agent/start', { method: 'POST' });
      if (res.status !== 200) throw new Error(`start failed: ${await res.text()}`);
      hangarTimes.push(performance.now() - t0);
      const { id } = await res.json();
      agentIds.push(id);
      // Stopped before the bare run: two OpenClaws booting at once on 2 cores would measure each other.
      await user.api('/api/me/agent/stop', { method: 'POST' });
      bareTimes.push(await bareColdStart(docker, h, config.port, i));
      log(`start ${i + 1}/${STARTS}: Hangar ${secs(hangarTimes[i])}, bare ${secs(bareTimes[i])}`);
    }
    const hangarCold = quantile(hangarTimes, 0.5);
    const bareCold = quantile(bareTimes, 0.5);
    log(`cold start (median of ${STARTS}, fresh volume): Hangar API → healthy ${secs(hangarCold)}; bare docker create+start → healthy ${secs(bareCold)}`);

    // Chat through Hangar vs straight to the gateway: same agent, same upstream.
    const user = await createTestUser(h);
    await giveProvider(user, fake);
    const started = await user.api('/api/me/agent/start', { method: 'POST' });
    if (started.status !== 200) throw new Error(`start failed: ${await started.text()}`);
    const agent = (await h.core.agents.findOwned('user', user.id))!;
    agentIds.push(agent.id);
    const token = h.core.agents.gatewayToken(agent);
    const api = await spawnApi(h.env, await freePort());
    stopApi = api.kill;
    const run = `${Date.now().toString(36)}`;
    const viaHangar = async (i: number) => {
      const r = await fetch(`${api.url}/api/chat`, {
        method: 'POST',
        headers: { authorization: `Bearer ${user.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ messages: [{ role: 'user', content: 'bench' }], sessionId: `h${run}-${i}` }),
      });
      if (r.status !== 200) throw new Error(`chat ${r.status}: ${await r.text()}`);
      await r.arrayBuffer();
    };
    const direct = async (i: number) => {
      const r = await fetch(`http://127.0.0.1:${agent.gatewayPort}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'x-openclaw-session-key': `bench:d${run}-${i}` },
        body: JSON.stringify({ model: 'openclaw/default', messages: [{ role: 'user', content: 'bench' }] }),
      });
      if (r.status !== 200) throw new Error(`direct ${r.status}: ${await r.text()}`);
      await r.arrayBuffer();
    };
    await loadTest(viaHangar, 4, CONCURRENCY);
    await loadTest(direct, 4, CONCURRENCY);
    const d = await loadTest(direct, CHATS, CONCURRENCY);
    const p = await loadTest(viaHangar, CHATS, CONCURRENCY);
    log(`chat (${CHATS} requests, ${CONCURRENCY} concurrent, a new session each): direct ${d.rps.toFixed(2)} req/s p50 ${ms(d.p50)} p99 ${ms(d.p99)}; via Hangar ${p.rps.toFixed(2)} req/s p50 ${ms(p.p50)} p99 ${ms(p.p99)}`);
    // Informational: OpenClaw's own turn (≈ 0.6 s) dwarfs the proxy; the goals are measured on the reference agent.
    return [
      row('OpenClaw cold start p50: API → ready / bare create+start', hangarCold, bareCold, 'ms', null, `${STARTS} starts, fresh volume`),
      row('OpenClaw chat req/s: Hangar / direct', p.rps, d.rps, 'req/s', null, `${CHATS} requests, ${CONCURRENCY} concurrent`),
    ];
  } finally {
    await stopApi?.();
    if (h) {
      await removeAgentsFromDocker(docker, agentIds);
      await h.stop();
    }
    await fake.close();
    await config.close();
  }
}
