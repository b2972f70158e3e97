import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import { createTestUser, removeAgentsFromDocker, spawnApi, startHangarOn, type Hangar } from '../support/hangar.runtime.ts';
import { freePort } from '../support/ports.ts';
import { withProcessDefaults } from '../../core/runtime/process-defaults.runtime.ts';
import { buildDist, launch, stopChild } from '../support/production.runtime.ts';
import { giveProvider } from '../support/scenario.ts';
import { atLeast, atMost, autocannon, cpuMs, row, startConfigurableHttpProxy, type BenchContext, type BenchRow, type LoadResult } from './bench.harness.ts';

// Chat through Hangar's proxy (its own API process, as in production: auth,
// ownership, rate limit, activity, identity headers on every request) against
// the same reference agent straight and behind configurable-http-proxy, the
// same upstream, autocannon in its own process. Plain and streamed answers.
// A fourth path, the floor, is fastify forwarding with nothing of Hangar's in
// it (test/bench/floor/fastify-forward.child.mjs): what the framework alone
// gives up against configurable-http-proxy.
const forwardChild = path.join(path.dirname(fileURLToPath(import.meta.url)), 'floor/fastify-forward.child.mjs');
const SECONDS = Number(process.env.BENCH_PROXY_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONCURRENCY ?? 8);
/** Rounds of the four paths, alternated so drift on a shared machine hits each alike; the best round counts. */
const ROUNDS = Number(process.env.BENCH_PROXY_ROUNDS ?? 1);
/** A directory: the API process under load runs with --cpu-prof and writes its profile there (the floor's in floor/). */
const CPU_PROF = process.env.BENCH_PROXY_CPU_PROF;

export default async function proxyBench({ stack, docker, log }: BenchContext): Promise<BenchRow[]> {
  const fake = await startFakeOpenAI({ chunkDelayMs: 0 });
  let h: Hangar | null = null;
  const stops: Array<() => Promise<void>> = [];
  const agentIds: string[] = [];
  try {
    // The per-user chat limit stays on the path (its cost is part of the figure) but high enough not to refuse the load.
    h = await startHangarOn(stack, { LOG_LEVEL: 'error', HANGAR_EGRESS_ALLOW: `host:${fake.port}`, HANGAR_CHAT_RATE_PER_MIN: '100000' });
    const user = await createTestUser(h);
    await giveProvider(user, fake);
    const started = await user.api('/api/me/agent/start', { method: 'POST' });
    if (started.status !== 200) throw new Error(`start failed: ${await started.text()}`);
    const agent = (await h.core.agents.findOwned('user', user.id))!;
    agentIds.push(agent.id);
    const gatewayToken = h.core.agents.gatewayToken(agent);
    // Compiled, as production runs it (HANGAR_BENCH_RUNTIME=tsx: the sources
    // through tsx, whose helpers then show in the request path's profile).
    const compiled = process.env.HANGAR_BENCH_RUNTIME !== 'tsx';
    if (compiled) buildDist();
    const api = await spawnApi(withProcessDefaults(h.env), await freePort(), 60_000, CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF}`] : [], compiled);
    stops.push(CPU_PROF ? api.stop : api.kill);
    const agentUrl = `http://127.0.0.1:${agent.gatewayPort}`;
    const chp = await startConfigurableHttpProxy(agentUrl);
    stops.push(chp.stop);

    // What Hangar sends the agent, sent by the peers too: the same work on the agent's side.
    const agentHeaders = {
      authorization: `Bearer ${gatewayToken}`,
      'content-type': 'application/json',
      'x-openclaw-session-key': `hangar:${user.id}:default`.toLowerCase(),
      'x-hangar-user-id': user.id,
      'x-hangar-user-name': 'bench',
    };
    const floorPort = await freePort();
    const floor = await launch([...(CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF}/floor`] : []), forwardChild, String(floorPort), agentUrl], { ...process.env, FLOOR_AGENT_HEADERS: JSON.stringify(agentHeaders) }, (o) => o.includes('ready'), 'fastify forward');
    stops.push(() => stopChild(floor));

    const rows: BenchRow[] = [];
    for (const stream of [false, true]) {
      const kind = stream ? 'streamed' : 'plain';
      const agentBody = JSON.stringify({ messages: [{ role: 'user', content: 'bench' }], stream, model: 'openclaw/default' });
      const paths: Record<'direct' | 'chp' | 'hangar' | 'floor', (seconds: number) => Promise<LoadResult>> = {
        direct: (seconds) => autocannon({ url: `${agentUrl}/v1/chat/completions`, method: 'POST', headers: agentHeaders, body: agentBody, connections: CONNECTIONS, seconds }),
        chp: (seconds) => autocannon({ url: `${chp.url}/v1/chat/completions`, method: 'POST', headers: agentHeaders, body: agentBody, connections: CONNECTIONS, seconds }),
        hangar: (seconds) => autocannon({
          url: `${api.url}/api/chat`,
          method: 'POST',
          headers: { authorization: `Bearer ${user.token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ messages: [{ role: 'user', content: 'bench' }], stream }),
          connections: CONNECTIONS,
          seconds,
        }),
        floor: (seconds) => autocannon({
          url: `http://127.0.0.1:${floorPort}/api/chat`,
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ messages: [{ role: 'user', content: 'bench' }], stream }),
          connections: CONNECTIONS,
          seconds,
        }),
      };
      // Warm-up: JIT, kept-alive sockets and caches for every path.
      for (const run of Object.values(paths)) await run(2);
      const best: Partial<Record<keyof typeof paths, LoadResult>> = {};
      /** The proxies' own CPU time per request (µs), the lowest round: what each costs, whatever the machine's load. */
      const cpu: Partial<Record<'chp' | 'hangar' | 'floor', number>> = {};
      const pids = { chp: chp.pid, hangar: api.pid, floor: floor.pid! };
      for (let r = 0; r < ROUNDS; r++) {
        for (const [name, run] of Object.entries(paths) as Array<[keyof typeof paths, (s: number) => Promise<LoadResult>]>) {
          const pid = name === 'direct' ? null : pids[name];
          const before = pid ? await cpuMs(pid) : 0;
          const got = await run(SECONDS);
          if (pid && got.requests > 0) {
            const perRequest = ((await cpuMs(pid)) - before) * 1000 / got.requests;
            const key = name as 'chp' | 'hangar' | 'floor';
            cpu[key] = Math.min(cpu[key] ?? Infinity, perRequest);
          }
          log(`${kind} ${name}: ${got.rps.toFixed(0)} req/s, p50 ${got.p50} ms, p99 ${got.p99} ms (${got.requests} requests)${pid ? `, ${((await cpuMs(pid)) - before).toFixed(0)} ms CPU` : ''}`);
          if (!best[name] || got.rps > best[name]!.rps) best[name] = got;
        }
      }
      const { direct, chp: peer, hangar, floor: bare } = best as Record<keyof typeof paths, LoadResult>;
      const n = `${CONNECTIONS} connections, ${SECONDS} s${ROUNDS > 1 ? `, best of ${ROUNDS}` : ''}`;
      rows.push(
        row(`chat ${kind} req/s: Hangar / direct`, hangar.rps, direct.rps, 'req/s', atLeast(0.9), n),
        row(`chat ${kind} req/s: Hangar / configurable-http-proxy`, hangar.rps, peer.rps, 'req/s', atLeast(1.0), n),
        row(`chat ${kind} p50: Hangar − direct`, hangar.p50, direct.p50, 'ms', atMost(3, 'delta'), n),
        row(`chat ${kind} p50: Hangar / configurable-http-proxy`, hangar.p50, peer.p50, 'ms', null, n),
        row(`chat ${kind} proxy CPU per request: Hangar / configurable-http-proxy`, cpu.hangar!, cpu.chp!, 'µs', null, n),
        row(`floor: chat ${kind} req/s, fastify forward with no Hangar code / configurable-http-proxy`, bare.rps, peer.rps, 'req/s', null, n),
        row(`floor: chat ${kind} CPU per request, fastify forward with no Hangar code / configurable-http-proxy`, cpu.floor!, cpu.chp!, 'µs', null, n),
      );
    }
    return rows;
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    if (h) {
      await removeAgentsFromDocker(docker, agentIds);
      await h.stop();
    }
    await fake.close();
  }
}
