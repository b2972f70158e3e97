import proto from '@temporalio/proto';
import type Docker from 'dockerode';
import { AGENT_PORT, agentWorkflowId } from '../../core/contracts/agent.contract.ts';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import { createTestUser, removeAgentsFromDocker, startHangarOn, type Hangar } from '../support/hangar.runtime.ts';
import { giveProvider } from '../support/scenario.ts';
import { atMost, bareColdStart, bareSpec, quantile, row, staticConfigServer, untilHealthy, type BenchContext, type BenchRow } from './bench.harness.ts';

// Starts: a new user's agent through Hangar's API (→ healthy) against a bare
// dockerode create+start+health of the same image; a stop → start against a
// bare `docker start` of a stopped container.
const COLD_STARTS = Number(process.env.BENCH_COLD_STARTS ?? 10);
/** A directory: the worker runs with --cpu-prof (every thread) and writes its profiles there when it stops. */
const CPU_PROF = process.env.BENCH_START_CPU_PROF;

/**
 * Where one start's time went, from its lifecycle's history: each event's
 * offset from the moment the client sent the request (same machine, same
 * clock), so the Temporal round trips, local activities and the Docker
 * activity show up beside the total the client saw.
 */
async function traceStart(h: Hangar, agentId: string, sentAt: number, answeredAt: number): Promise<string> {
  const history = await h.temporal.workflow.getHandle(agentWorkflowId(agentId)).fetchHistory();
  const names = proto.temporal.api.enums.v1.EventType;
  const parts: string[] = [];
  for (const e of history.events ?? []) {
    const at = Number(e.eventTime?.seconds ?? 0) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6);
    if (at < sentAt - 5) continue;
    const name = String(names[e.eventType ?? 0] ?? e.eventType).replace(/^EVENT_TYPE_/, '').toLowerCase();
    const what = e.activityTaskScheduledEventAttributes?.activityType?.name ?? e.markerRecordedEventAttributes?.markerName ?? '';
    parts.push(`+${at - sentAt} ${name}${what ? `(${what})` : ''}`);
  }
  return `${parts.join(', ')}; answered +${answeredAt - sentAt} ms`;
}

/** The bare way to bring a stopped agent back: `docker start` of the same container (its env unchanged). */
async function bareWarmStarts(docker: Docker, image: string, configPort: number, rounds: number): Promise<number[]> {
  const c = await docker.createContainer(bareSpec(image, configPort, `hangar-bench-warm-${process.pid}`, null));
  const times: number[] = [];
  try {
    for (let i = 0; i <= rounds; i++) {
      const t0 = performance.now();
      await c.start();
      await untilHealthy((await c.inspect()).NetworkSettings.Ports[`${AGENT_PORT}/tcp`]![0].HostPort);
      if (i > 0) times.push(performance.now() - t0); // the first start is a cold one
      await c.stop({ t: 10 });
    }
    return times;
  } finally {
    await c.remove({ force: true });
  }
}

export default async function startBench({ stack, docker, log }: BenchContext): Promise<BenchRow[]> {
  const fake = await startFakeOpenAI({ chunkDelayMs: 0 });
  const config = await staticConfigServer();
  const network = await docker.createNetwork({
    Name: `hangar-bench-start-${process.pid}`,
    Driver: 'bridge',
    Options: { 'com.docker.network.bridge.enable_icc': 'false' },
  });
  let h: Hangar | null = null;
  const agentIds: string[] = [];
  try {
    h = await startHangarOn(stack, { LOG_LEVEL: 'error', HANGAR_EGRESS_ALLOW: `host:${fake.port}` }, { workerNodeArgs: CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF}`] : [] });
    // Warm every path once so none pays first-use costs in the figures.
    await bareColdStart(docker, stack.agentImage, config.port, -1);
    await bareColdStart(docker, stack.agentImage, config.port, -1, network.id);
    const warmup = await createTestUser(h);
    await giveProvider(warmup, fake);
    const first = await warmup.api('/api/me/agent/start', { method: 'POST' });
    if (first.status !== 200) throw new Error(`start failed: ${await first.text()}`);
    agentIds.push((await first.json()).id);

    const hangarTimes: number[] = [];
    const bareTimes: number[] = [];
    const minimalTimes: number[] = [];
    const users: Awaited<ReturnType<typeof createTestUser>>[] = [];
    for (let i = 0; i < COLD_STARTS; i++) {
      const user = await createTestUser(h);
      users.push(user);
      await giveProvider(user, fake);
      // Interleaved, so a burst of load on the shared machine hits all three alike.
      bareTimes.push(await bareColdStart(docker, stack.agentImage, config.port, i, network.id));
      const t0 = performance.now();
      const sentAt = Date.now();
      const res = await user.api('/api/me/agent/start', { method: 'POST' });
      if (res.status !== 200) throw new Error(`start failed: ${await res.text()}`);
      hangarTimes.push(performance.now() - t0);
      const answeredAt = Date.now();
      const { id } = await res.json();
      agentIds.push(id);
      if (i === COLD_STARTS - 1) log(`cold start trace (ms after the request): ${await traceStart(h, id, sentAt, answeredAt)}`);
      minimalTimes.push(await bareColdStart(docker, stack.agentImage, config.port, i));
    }
    const list = (xs: number[]) => xs.map((t) => t.toFixed(0)).join(' ');
    log(`cold: Hangar ${list(hangarTimes)} ms; bare (same container) ${list(bareTimes)} ms; bare (minimal) ${list(minimalTimes)} ms`);

    // Warm start of a stopped agent. Hangar recreates the container (its env
    // must carry a new bootstrap token); the bare path restarts the same one.
    const hangarWarm: number[] = [];
    for (const user of users) {
      const stopped = await user.api('/api/me/agent/stop', { method: 'POST' });
      if (stopped.status !== 200) throw new Error(`stop failed: ${await stopped.text()}`);
      const t0 = performance.now();
      const res = await user.api('/api/me/agent/start', { method: 'POST' });
      if (res.status !== 200) throw new Error(`start failed: ${await res.text()}`);
      hangarWarm.push(performance.now() - t0);
    }
    const bareWarm = await bareWarmStarts(docker, stack.agentImage, config.port, COLD_STARTS);
    const n = `${COLD_STARTS} starts each, interleaved; bare = the same container spec (user, read-only root, limits, fresh volume, ICC-off bridge), polled every 5 ms like Hangar's`;
    return [
      row('cold start p50: API → healthy / bare create+start+health', quantile(hangarTimes, 0.5), quantile(bareTimes, 0.5), 'ms', atMost(1.1), n),
      row('cold start p95: API → healthy / bare create+start+health', quantile(hangarTimes, 0.95), quantile(bareTimes, 0.95), 'ms', atMost(1.1), n),
      row('cold start p50: API → healthy / bare minimal container', quantile(hangarTimes, 0.5), quantile(minimalTimes, 0.5), 'ms', null, n),
      row('warm start p50: stop → start (recreated) / bare docker start', quantile(hangarWarm, 0.5), quantile(bareWarm, 0.5), 'ms', null, n),
    ];
  } finally {
    if (h) {
      await removeAgentsFromDocker(docker, agentIds);
      await h.stop();
    }
    await network.remove().catch(() => undefined);
    await fake.close();
    await config.close();
  }
}
