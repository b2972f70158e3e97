import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { MockActivityEnvironment } from '@temporalio/testing';
import Docker from 'dockerode';
import tar from 'tar-stream';
import { createImageUpdateActivities, type Snapshot } from '../../activities/image-update.activities.ts';
import { agentContainerName, agentVolumeName, type ContainerSpec } from '../../core/contracts/agent.contract.ts';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import { createTestUser, removeAgentsFromDocker, startHangarOn, type Hangar } from '../support/hangar.runtime.ts';
import { giveProvider } from '../support/scenario.ts';
import { buildVersion } from '../support/test-images.ts';
import { atLeast, atMost, row, type BenchContext, type BenchRow } from './bench.harness.ts';

// Fleet-update benchmarks, as ratios against a baseline measured in this run:
// 1. a rolling update's wall time vs the sum of its waves' critical paths
//    (the slowest agent of each wave): what orchestration adds between waves;
// 2. snapshot and restore throughput vs a bare `docker cp` of the same volume.
const AGENTS = Number(process.env.BENCH_ROLLOUT_AGENTS ?? 20);
const VOLUME_MB = Number(process.env.BENCH_SNAPSHOT_MB ?? 64);
const SNAPSHOT_ROUNDS = Number(process.env.BENCH_SNAPSHOT_ROUNDS ?? 7);
const run = promisify(execFile);
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function rollingUpdate(h: Hangar, image: string, base: string, log: (m: string) => void): Promise<BenchRow[]> {
  const fake = await startFakeOpenAI({ chunkDelayMs: 0 });
  const admin = await createTestUser(h, 'admin');
  const agentIds: string[] = [];
  try {
    for (let i = 0; i < AGENTS; i++) {
      const u = await createTestUser(h);
      await giveProvider(u, fake);
      const res = await u.api('/api/me/agent/start', { method: 'POST' });
      if (res.status !== 200) throw new Error(`start: ${await res.text()}`);
      agentIds.push((await res.json()).id);
    }
    const settings = await (await admin.api('/api/admin/fleet/settings')).json();
    await admin.api('/api/admin/fleet/settings', {
      method: 'PUT',
      body: { ...settings, imageAllowlist: ['hangar-bench/'], channels: [], strategy: { ...settings.strategy, kind: 'rollingWave', batchPercent: 25, pauseSeconds: 0, failureThreshold: 1 } },
    });
    await buildVersion(h.docker, base, image, '2.0.0', 'bench v2');
    const t0 = performance.now();
    const res = await admin.api('/api/admin/rollouts', { body: { image } });
    if (res.status !== 201) throw new Error(`rollout: ${await res.text()}`);
    const { id } = await res.json();
    let r: { status: string; waves: { agentIds: string[] }[]; agents: { agentId: string; startedAt: string; finishedAt: string }[] } | null = null;
    // Polled every 50 ms (at most 10 minutes): the wall is read at the poll
    // that sees the end, so a coarse poll would add its own half-interval.
    for (let i = 0; i < 12_000; i++) {
      r = await (await admin.api(`/api/admin/rollouts/${id}`)).json();
      if (['completed', 'aborted', 'failed'].includes(r!.status)) break;
      await new Promise((s) => setTimeout(s, 50));
    }
    const wall = performance.now() - t0;
    if (r?.status !== 'completed') throw new Error(`rollout ended ${r?.status}`);
    const byId = new Map(r.agents.map((a) => [a.agentId, Date.parse(a.finishedAt) - Date.parse(a.startedAt)]));
    const critical = r.waves.map((w) => Math.max(...w.agentIds.map((a) => byId.get(a)!)));
    const sum = critical.reduce((a, b) => a + b, 0);
    log(`rolling update of ${AGENTS} agents in ${r.waves.length} waves of 25%: wall ${secs(wall)}; sum of waves' critical paths ${secs(sum)} (${critical.map(secs).join(' + ')})`);
    return [row(`rolling update of ${AGENTS}: wall / sum of waves' critical paths`, wall, sum, 'ms', atMost(1.05), `${r.waves.length} waves of 25 %`)];
  } finally {
    await removeAgentsFromDocker(h.docker, agentIds);
    await fake.close();
  }
}

/** A stopped container whose /data holds VOLUME_MB of incompressible files. */
async function filledVolume(docker: Docker, image: string) {
  const id = `bench-${randomUUID().slice(0, 8)}`;
  const name = agentContainerName(id);
  const volume = agentVolumeName(id);
  await docker.createVolume({ Name: volume });
  const c = await docker.createContainer({ name, Image: image, HostConfig: { Mounts: [{ Type: 'volume', Source: volume, Target: '/data' }] } });
  const pack = tar.pack();
  for (let i = 0; i < VOLUME_MB; i++) pack.entry({ name: `data/blob-${i}.bin`, uid: 10001, gid: 10001 }, randomBytes(1024 * 1024));
  pack.finalize();
  await c.putArchive(pack as unknown as NodeJS.ReadableStream, { path: '/' });
  return { id, name, volume, container: c };
}

async function snapshotThroughput(docker: Docker, image: string, log: (m: string) => void): Promise<BenchRow[]> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hangar-bench-snap-'));
  const v = await filledVolume(docker, image);
  const env = new MockActivityEnvironment();
  const acts = createImageUpdateActivities({ docker, snapshotDir: dir });
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const timed = async (fn: () => Promise<unknown>) => {
    const t = performance.now();
    await fn();
    return performance.now() - t;
  };
  try {
    const spec = { agentId: v.id, instanceId: 'bench', ownerKind: 'user', ownerId: 'bench', containerName: v.name, volumeName: v.volume } as ContainerSpec;
    // Warm the page cache once, then alternate the two paths so neither gets it alone.
    let snap = (await env.run(acts.snapshotVolume, { containerName: v.name, agentId: v.id, key: 'warm' })) as Snapshot;
    const snapT: number[] = [];
    const outT: number[] = [];
    const restoreT: number[] = [];
    const inT: number[] = [];
    for (let i = 0; i < SNAPSHOT_ROUNDS; i++) {
      snapT.push(await timed(async () => (snap = (await env.run(acts.snapshotVolume, { containerName: v.name, agentId: v.id, key: 'bench' })) as Snapshot)));
      await rm(path.join(dir, 'cp-out'), { recursive: true, force: true });
      outT.push(await timed(() => run('docker', ['cp', `${v.name}:/data`, path.join(dir, 'cp-out')])));
      // restoreVolume replaces the container's volume; the container is recreated after, as applyImage does.
      await docker.getContainer(v.name).remove({ force: true });
      restoreT.push(await timed(() => env.run(acts.restoreVolume, { spec, image, snapshot: snap })));
      await docker.createContainer({ name: v.name, Image: image, HostConfig: { Mounts: [{ Type: 'volume', Source: v.volume, Target: '/data' }] } });
      inT.push(await timed(() => run('docker', ['cp', `${path.join(dir, 'cp-out')}/.`, `${v.name}:/data`])));
    }
    const mb = snap.bytes / 1024 / 1024;
    const rate = (t: number) => `${(mb / (t / 1000)).toFixed(0)} MB/s`;
    const [s1, o1, r1, i1] = [snapT, outT, restoreT, inT].map(median);
    log(`snapshot of ${mb.toFixed(0)} MB (median of ${SNAPSHOT_ROUNDS}): Hangar ${rate(s1)} (tar to file, sha256, fsync) vs docker cp out ${rate(o1)}`);
    log(`restore of ${mb.toFixed(0)} MB (median of ${SNAPSHOT_ROUNDS}): Hangar ${rate(r1)} (fresh volume + untar) vs docker cp in ${rate(i1)}`);
    const mbps = (t: number) => mb / (t / 1000);
    const n = `${mb.toFixed(0)} MB, median of ${SNAPSHOT_ROUNDS}`;
    return [
      row('snapshot MB/s: Hangar (tar, sha256, fsync) / docker cp out', mbps(s1), mbps(o1), 'MB/s', atLeast(0.9), n),
      row('restore MB/s: Hangar (fresh volume, untar) / docker cp in', mbps(r1), mbps(i1), 'MB/s', null, n),
    ];
  } finally {
    await docker.getContainer(v.name).remove({ force: true }).catch(() => undefined);
    await docker.getVolume(v.volume).remove().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

export default async function rolloutBench({ stack, docker, log }: BenchContext): Promise<BenchRow[]> {
  const image = `hangar-bench/agent-${randomUUID().slice(0, 8)}:stable`;
  await buildVersion(docker, stack.agentImage, image, '1.0.0', 'bench v1');
  let h: Hangar | null = null;
  try {
    const rows = await snapshotThroughput(docker, image, log);
    h = await startHangarOn(stack, { LOG_LEVEL: 'error', HANGAR_AGENT_IMAGE: image, HANGAR_UPDATE_HEALTH_POLL_MS: '200' });
    return [...(await rollingUpdate(h, image, image, log)), ...rows];
  } finally {
    await h?.stop();
    await docker.getImage(image).remove({ force: true }).catch(() => undefined);
  }
}
