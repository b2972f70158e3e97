import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Docker from 'dockerode';
import { AGENT_PORT } from '../../core/contracts/agent.contract.ts';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import { startTestStack } from '../support/global-setup.ts';
import { createTestUser, removeAgentsFromDocker, spawnApi, startHangarOn, type Hangar } from '../support/hangar.runtime.ts';
import { freePort } from '../support/ports.ts';
import { giveProvider } from '../support/scenario.ts';

// `npm run bench`: Hangar against the bare minimum doing the same job, both
// measured in this run on this machine, reported as ratios (absolute times
// move with the machine; ratios hold).
const COLD_STARTS = Number(process.env.BENCH_COLD_STARTS ?? 5);
const CHAT_REQUESTS = Number(process.env.BENCH_CHAT_REQUESTS ?? 400);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const ms = (n: number) => `${n.toFixed(1)} ms`;

/** The least a bare container needs to boot: a static config answer. */
async function staticConfigServer() {
  const body = JSON.stringify({ gateway: { auth: { mode: 'token', token: 'bench-gateway-token' } }, agents: { defaults: { model: { primary: null, fallbacks: [] } } }, models: { providers: {} } });
  const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(body));
  await new Promise<void>((r) => server.listen(0, '0.0.0.0', r));
  return { port: (server.address() as AddressInfo).port, close: () => new Promise((r) => server.close(r)) };
}

async function bareColdStart(docker: Docker, image: string, configPort: number, i: number): Promise<number> {
  const name = `hangar-bench-bare-${process.pid}-${i}`;
  const t0 = performance.now();
  const c = await docker.createContainer({
    name,
    Image: image,
    Env: [`HANGAR_CONFIG_URL=http://host.docker.internal:${configPort}/`, 'HANGAR_GATEWAY_TOKEN=bench'],
    ExposedPorts: { [`${AGENT_PORT}/tcp`]: {} },
    HostConfig: {
      PortBindings: { [`${AGENT_PORT}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: '' }] },
      ExtraHosts: ['host.docker.internal:host-gateway'],
    },
  });
  try {
    await c.start();
    const port = (await c.inspect()).NetworkSettings.Ports[`${AGENT_PORT}/tcp`]![0].HostPort;
    for (let k = 0; k < 2000; k++) {
      const ok = await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok, () => false);
      if (ok) return performance.now() - t0;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error('bare container never became healthy');
  } finally {
    await c.remove({ force: true });
  }
}

/** The bare way to bring a stopped agent back: `docker start` of the same container (its env unchanged). */
async function bareWarmStarts(docker: Docker, image: string, configPort: number, rounds: number): Promise<number[]> {
  const c = await docker.createContainer({
    name: `hangar-bench-warm-${process.pid}`,
    Image: image,
    Env: [`HANGAR_CONFIG_URL=http://host.docker.internal:${configPort}/`, 'HANGAR_GATEWAY_TOKEN=bench'],
    ExposedPorts: { [`${AGENT_PORT}/tcp`]: {} },
    HostConfig: {
      PortBindings: { [`${AGENT_PORT}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: '' }] },
      ExtraHosts: ['host.docker.internal:host-gateway'],
    },
  });
  const times: number[] = [];
  try {
    for (let i = 0; i <= rounds; i++) {
      const t0 = performance.now();
      await c.start();
      const port = (await c.inspect()).NetworkSettings.Ports[`${AGENT_PORT}/tcp`]![0].HostPort;
      let ok = false;
      for (let k = 0; k < 2000 && !ok; k++) {
        ok = await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok, () => false);
        if (!ok) await new Promise((r) => setTimeout(r, 25));
      }
      if (!ok) throw new Error('bare container never became healthy');
      if (i > 0) times.push(performance.now() - t0); // the first start is a cold one
      await c.stop({ t: 10 });
    }
    return times;
  } finally {
    await c.remove({ force: true });
  }
}

async function loadTest(call: () => Promise<void>, total: number, concurrency: number) {
  const latencies: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        next++;
        const s = performance.now();
        await call();
        latencies.push(performance.now() - s);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  return { rps: total / seconds, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) };
}

async function main() {
  const stack = await startTestStack(() => undefined);
  const fake = await startFakeOpenAI({ chunkDelayMs: 0 });
  const config = await staticConfigServer();
  const docker = new Docker();
  let h: Hangar | null = null;
  let stopApi: (() => Promise<void>) | null = null;
  const agentIds: string[] = [];
  try {
    // The per-user chat limit stays on the path (its cost is part of the figure) but high enough not to refuse the load.
    h = await startHangarOn(stack.info, { LOG_LEVEL: 'error', HANGAR_EGRESS_ALLOW: `host:${fake.port}`, HANGAR_CHAT_RATE_PER_MIN: '100000' });
    // Warm both paths once so neither pays first-use costs in the figures.
    await bareColdStart(docker, stack.info.agentImage, config.port, -1);

    const hangarTimes: number[] = [];
    const bareTimes: number[] = [];
    const coldUsers: Awaited<ReturnType<typeof createTestUser>>[] = [];
    for (let i = 0; i < COLD_STARTS; i++) {
      const user = await createTestUser(h);
      coldUsers.push(user);
      await giveProvider(user, fake);
      const t0 = performance.now();
      const res = await user.api('/api/me/agent/start', { method: 'POST' });
      if (res.status !== 200) throw new Error(`start failed: ${await res.text()}`);
      hangarTimes.push(performance.now() - t0);
      agentIds.push((await res.json()).id);
      bareTimes.push(await bareColdStart(docker, stack.info.agentImage, config.port, i));
    }
    const hangarCold = quantile(hangarTimes, 0.5);
    const bareCold = quantile(bareTimes, 0.5);
    console.log(`cold start (median of ${COLD_STARTS}): Hangar API → healthy ${ms(hangarCold)}; bare dockerode create+start+health ${ms(bareCold)}`);
    console.log(`  ratio Hangar / bare = ${(hangarCold / bareCold).toFixed(2)}x`);

    // Warm start of a stopped agent. Hangar recreates the container (its env
    // must carry a new bootstrap token); the bare path restarts the same one.
    const hangarWarm: number[] = [];
    for (const user of coldUsers) {
      const stopped = await user.api('/api/me/agent/stop', { method: 'POST' });
      if (stopped.status !== 200) throw new Error(`stop failed: ${await stopped.text()}`);
      const t0 = performance.now();
      const res = await user.api('/api/me/agent/start', { method: 'POST' });
      if (res.status !== 200) throw new Error(`start failed: ${await res.text()}`);
      hangarWarm.push(performance.now() - t0);
    }
    const bareWarm = await bareWarmStarts(docker, stack.info.agentImage, config.port, COLD_STARTS);
    const [hw, bw] = [quantile(hangarWarm, 0.5), quantile(bareWarm, 0.5)];
    console.log(`warm start (median of ${COLD_STARTS}): Hangar stop → start, container recreated ${ms(hw)}; bare docker start of the stopped container ${ms(bw)}`);
    console.log(`  ratio Hangar / bare = ${(hw / bw).toFixed(2)}x`);

    // Chat: through Hangar's proxy vs straight to the container, same agent, same upstream.
    const user = await createTestUser(h);
    await giveProvider(user, fake);
    const started = await user.api('/api/me/agent/start', { method: 'POST' });
    if (started.status !== 200) throw new Error(`start failed: ${await started.text()}`);
    const agent = (await h.core.agents.findOwned('user', user.id))!;
    agentIds.push(agent.id);
    const token = h.core.agents.gatewayToken(agent);
    const body = JSON.stringify({ messages: [{ role: 'user', content: 'bench' }] });
    // The proxy under test runs in its own process, as in production, so it does
    // not share this process's event loop with the load generator.
    const api = await spawnApi(h.env, await freePort());
    stopApi = api.kill;
    const viaHangar = async () => {
      const r = await fetch(`${api.url}/api/chat`, {
        method: 'POST',
        headers: { authorization: `Bearer ${user.token}`, 'content-type': 'application/json' },
        body,
      });
      if (r.status !== 200) throw new Error(`chat ${r.status}`);
      await r.arrayBuffer();
    };
    const direct = async () => {
      const r = await fetch(`http://127.0.0.1:${agent.gatewayPort}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body,
      });
      if (r.status !== 200) throw new Error(`direct ${r.status}`);
      await r.arrayBuffer();
    };
    await loadTest(viaHangar, 50, CONCURRENCY);
    await loadTest(direct, 50, CONCURRENCY);
    const d = await loadTest(direct, CHAT_REQUESTS, CONCURRENCY);
    const p = await loadTest(viaHangar, CHAT_REQUESTS, CONCURRENCY);
    console.log(`chat (${CHAT_REQUESTS} requests, ${CONCURRENCY} concurrent): direct ${d.rps.toFixed(0)} req/s p50 ${ms(d.p50)} p99 ${ms(d.p99)}; via Hangar ${p.rps.toFixed(0)} req/s p50 ${ms(p.p50)} p99 ${ms(p.p99)}`);
    console.log(`  throughput ratio Hangar / direct = ${(p.rps / d.rps).toFixed(2)}x; added latency p50 +${ms(p.p50 - d.p50)}, p99 +${ms(p.p99 - d.p99)}`);
  } finally {
    await stopApi?.();
    if (h) {
      await removeAgentsFromDocker(docker, agentIds);
      await h.stop();
    }
    await fake.close();
    await config.close();
    await stack.stop();
  }
}

await main();
