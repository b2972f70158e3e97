import { startFakeOpenAI } from '../support/fake-openai.ts';
import { createTestUser, removeAgentsFromDocker, startHangarOn, type Hangar, type TestUser } from '../support/hangar.runtime.ts';
import { giveProvider } from '../support/scenario.ts';
import { atMost, bareColdStart, row, staticConfigServer, type BenchContext, type BenchRow } from './bench.harness.ts';

// A start storm: USERS new users send their first chat at the same moment.
// Hangar runs PARALLELISM starts at once (HANGAR_MAX_CONCURRENT_STARTS) and
// queues the rest; every chat must be answered, none with 429. The peer:
// USERS bare dockerode create+start+health of the same image, PARALLELISM at a time.
const USERS = Number(process.env.BENCH_STORM_USERS ?? 50);
const PARALLELISM = Number(process.env.BENCH_STORM_PARALLELISM ?? 8);

async function pool<T>(n: number, width: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) {
      const i = next++;
      out[i] = await fn(i);
    }
  }));
  return out;
}

export default async function stormBench({ stack, docker, log }: BenchContext): Promise<BenchRow[]> {
  const fake = await startFakeOpenAI({ chunkDelayMs: 0 });
  const config = await staticConfigServer();
  let h: Hangar | null = null;
  const agentIds: string[] = [];
  try {
    h = await startHangarOn(stack, { LOG_LEVEL: 'error', HANGAR_EGRESS_ALLOW: `host:${fake.port}`, HANGAR_MAX_CONCURRENT_STARTS: String(PARALLELISM) });
    // Warm both paths (image layers, the worker's first activities) outside the figures.
    await bareColdStart(docker, stack.agentImage, config.port, -1);
    const warm = await createTestUser(h);
    await giveProvider(warm, fake);
    const warmed = await warm.api('/api/chat', { body: { messages: [{ role: 'user', content: 'warm' }] } });
    if (warmed.status !== 200) throw new Error(`warm-up chat: ${warmed.status} ${await warmed.text()}`);
    agentIds.push((await h.core.agents.findOwned('user', warm.id))!.id);

    const t0 = performance.now();
    await pool(USERS, PARALLELISM, (i) => bareColdStart(docker, stack.agentImage, config.port, 1000 + i));
    const bare = performance.now() - t0;
    log(`${USERS} bare starts, ${PARALLELISM} at a time: ${(bare / 1000).toFixed(1)} s`);

    const users: TestUser[] = [];
    for (let i = 0; i < USERS; i++) {
      const u = await createTestUser(h);
      await giveProvider(u, fake);
      users.push(u);
    }
    const t1 = performance.now();
    const answers = await Promise.all(users.map(async (u) => {
      const res = await u.api('/api/chat', { body: { messages: [{ role: 'user', content: 'first!' }] } });
      await res.arrayBuffer();
      return { status: res.status, at: performance.now() - t1 };
    }));
    const storm = performance.now() - t1;
    for (const u of users) {
      const a = await h.core.agents.findOwned('user', u.id);
      if (a) agentIds.push(a.id);
    }
    const byStatus = answers.reduce<Record<number, number>>((m, a) => ({ ...m, [a.status]: (m[a.status] ?? 0) + 1 }), {});
    log(`${USERS} first chats at once: ${(storm / 1000).toFixed(1)} s; answers by status ${JSON.stringify(byStatus)}`);
    const refused = answers.filter((a) => a.status !== 200).length;
    const tooMany = answers.filter((a) => a.status === 429).length;
    return [
      row(`${USERS} first chats at once / ${USERS} bare starts ${PARALLELISM} at a time`, storm, bare, 'ms', atMost(1.3), `all answered: ${refused === 0 ? 'yes' : `no (${refused} not 200)`}`),
      row('first chats answered 429 (must be 0)', tooMany, USERS, 'count', atMost(0)),
    ];
  } finally {
    if (h) {
      await removeAgentsFromDocker(docker, agentIds);
      await h.stop();
    }
    await fake.close();
    await config.close();
  }
}
