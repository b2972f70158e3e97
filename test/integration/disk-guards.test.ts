import { randomUUID } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type Docker from 'dockerode';
import tar from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { agentContainerName, agentVolumeName, CONTROL_TASK_QUEUE } from '../../core/contracts/agent.contract.ts';
import { fleetReconcile } from '../../workflows/fleet-reconcile.workflow.ts';
import { createTestUser, useScene, type TestUser } from '../support/hangar.harness.ts';
import { giveProvider, execIn } from '../support/scenario.ts';

// The disk-exhaustion attacks of the security review, performed against the
// real stack: a member flooding chat with 4 MB requests (rate limit, history
// cap), and an agent filling its volume past the storage cap (stopped by the
// next reconcile, its starts refused until the volume shrinks).

const RATE = 5;
const CAP_MB = 1;
/** The reference agent's default per-entry history cap. */
const ENTRY_CAP = 64 * 1024;


/** File sizes under a container's /data/sessions, read through the archive API. */
async function sessionFileSizes(c: Docker.Container): Promise<number[]> {
  const stream = (await c.getArchive({ path: '/data/sessions' })) as NodeJS.ReadableStream;
  const extract = tar.extract();
  const sizes: number[] = [];
  extract.on('entry', (h, s, next) => {
    if (h.type === 'file') sizes.push(h.size ?? 0);
    s.on('end', next);
    s.resume();
  });
  await pipeline(stream, extract);
  return sizes;
}

describe('disk exhaustion guards', () => {
  const scene = useScene({ overrides: { HANGAR_CHAT_RATE_PER_MIN: String(RATE), HANGAR_AGENT_STORAGE_MB: String(CAP_MB) } });

  /** The reconcile, run now rather than waiting for its schedule. */
  const reconcile = () =>
    scene.h.temporal.workflow.execute(fleetReconcile, { taskQueue: CONTROL_TASK_QUEUE, workflowId: `fleet-reconcile-test-${randomUUID()}` });

  async function startedAgent(user: TestUser): Promise<string> {
    await giveProvider(user, scene.fake);
    const res = await user.api('/api/me/agent/start', { method: 'POST' });
    expect(res.status, await res.clone().text()).toBe(200);
    const { id } = await res.json();
    scene.agentIds.push(id);
    return id;
  }

  it('4 MB chat requests in a loop get 429 after the per-user limit, and the history stays capped', async () => {
    const [mallory, bystander] = [await createTestUser(scene.h), await createTestUser(scene.h)];
    const agentId = await startedAgent(mallory);
    // Just under the route's 4 MB body limit: 20 messages of 200,000 characters.
    const body = { messages: Array.from({ length: 20 }, (_, i) => ({ role: 'user', content: `${i}:${'m'.repeat(199_990)}` })) };
    expect(JSON.stringify(body).length).toBeGreaterThan(4_000_000);

    const statuses: number[] = [];
    let refused: Response | null = null;
    for (let i = 0; i < RATE * 3 && !refused; i++) {
      const res = await mallory.api('/api/chat', { body });
      statuses.push(res.status);
      if (res.status === 429) refused = res;
      else await res.arrayBuffer();
    }
    expect(statuses).toEqual([...Array(RATE).fill(200), 429]);
    const retryAfter = Number(refused!.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    const error = (await refused!.json()).error;
    expect(error.code).toBe('rate_limited');
    expect(error.message).toContain(`at most ${RATE} a minute`);

    // Per user: someone else is not held back by mallory's flood.
    await startedAgent(bystander);
    const other = await bystander.api('/api/chat', { body: { messages: [{ role: 'user', content: 'hi' }] } });
    expect(other.status, await other.clone().text()).toBe(200);
    await other.arrayBuffer();

    // Five 4 MB turns: uncapped they would be ~21 MB on the volume.
    const sizes = await sessionFileSizes(scene.h.docker.getContainer(agentContainerName(agentId)));
    const total = sizes.reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThan(0);
    expect(total).toBeLessThanOrEqual(RATE * ENTRY_CAP);
    const history = JSON.stringify(await (await mallory.api('/api/chat/sessions')).json());
    expect(history).toMatch(/…\[truncated \d+ bytes\]/);
  });

  it('an agent that fills its volume past the cap is stopped by the next reconcile, and cannot start until it shrinks', async () => {
    const [carol, admin] = [await createTestUser(scene.h), await createTestUser(scene.h, 'admin')];
    const agentId = await startedAgent(carol);
    const container = scene.h.docker.getContainer(agentContainerName(agentId));
    const fill = `require('fs').writeFileSync('/data/filler', Buffer.alloc(${2 * CAP_MB} * 1024 * 1024, 7))`;
    expect(await execIn(container, ['node', '-e', fill])).toBe(0);

    const report = await reconcile();
    expect(report.measured).toBeGreaterThan(0);
    const row = await scene.h.core.agents.get(agentId);
    expect(row.status).toBe('stopped');
    expect(row.statusReason).toBe('storage_quota_exceeded');
    expect(Number(row.storageBytes)).toBeGreaterThan(CAP_MB * 1024 * 1024);
    expect((await container.inspect()).State.Running).toBe(false);

    // Visible to the owner, to admins, in the fleet events and in /metrics.
    expect((await (await carol.api('/api/me/agent')).json()).statusReason).toBe('storage_quota_exceeded');
    const fleet = await (await admin.api('/api/admin/agents?limit=200')).json();
    const seen = fleet.data.find((a: { id: string }) => a.id === agentId);
    expect(seen).toMatchObject({ status: 'stopped', statusReason: 'storage_quota_exceeded', storageCapBytes: CAP_MB * 1024 * 1024 });
    expect(seen.storageBytes).toBe(Number(row.storageBytes));
    expect(Date.parse(seen.storageMeasuredAt)).toBeGreaterThan(Date.now() - 5 * 60_000);
    const events = await (await admin.api(`/api/admin/fleet/events?type=agent.storage_quota_exceeded&agentId=${agentId}`)).json();
    expect(events.data[0]?.payload).toMatchObject({ storageBytes: Number(row.storageBytes), capBytes: CAP_MB * 1024 * 1024, stopped: true });
    const metrics = await (await admin.api('/metrics')).text();
    const line = metrics.split('\n').find((l) => l.startsWith('hangar_agent_storage_bytes{') && l.includes(`agent="${agentId}"`));
    expect(Number(line?.split(' ').at(-1))).toBe(Number(row.storageBytes));
    expect(metrics).toMatch(/^hangar_agent_storage_cap_bytes 1048576$/m);
    expect(Number(/^hangar_agents_over_storage_cap (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);

    // A start (or a chat, which starts) is refused with a clear 409, and nothing is created.
    for (const res of [await carol.api('/api/me/agent/start', { method: 'POST' }), await carol.api('/api/chat', { body: { messages: [{ role: 'user', content: 'let me in' }] } })]) {
      expect(res.status).toBe(409);
      const err = (await res.json()).error;
      expect(err.code).toBe('storage_quota_exceeded');
      expect(err.message).toMatch(/\d+ MB used, 1 MB allowed/);
    }
    expect((await container.inspect()).State.Running).toBe(false);
    expect((await scene.h.core.agents.get(agentId)).statusReason).toBe('storage_quota_exceeded');

    // Shrunk by hand (an admin removing the file through a helper container), then measured again: it starts.
    const helper = await scene.h.docker.createContainer({
      Image: scene.h.core.config.agentImage,
      User: '10001:10001',
      Entrypoint: ['node', '-e', "require('fs').rmSync('/data/filler')"],
      Cmd: [],
      NetworkDisabled: true,
      HostConfig: { Mounts: [{ Type: 'volume', Source: agentVolumeName(agentId), Target: '/data' }] },
    });
    try {
      await helper.start();
      expect((await helper.wait()).StatusCode).toBe(0);
    } finally {
      await helper.remove({ force: true });
    }
    await reconcile();
    expect(Number((await scene.h.core.agents.get(agentId)).storageBytes)).toBeLessThan(CAP_MB * 1024 * 1024);
    const again = await carol.api('/api/me/agent/start', { method: 'POST' });
    expect(again.status, await again.clone().text()).toBe(200);
    expect((await again.json()).status).toBe('running');
  });
});
