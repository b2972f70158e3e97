import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, readdir, readFile, readlink, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import Docker from 'dockerode';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createImageUpdateActivities, type Snapshot } from '../../activities/image-update.activities.ts';
import { agentContainerName, agentVolumeName, type ContainerSpec } from '../../core/contracts/agent.contract.ts';
import { filesUnder } from '../support/scenario.ts';

// Volume snapshots and restores stream in a worker thread
// (activities/workers/volume-snapshot.worker.mjs), against a real engine: what
// lands on disk is the volume's tar with the hash the activity reports, the
// activity heartbeats with byte counts while it streams, a missing container
// and a cancelled activity leave nothing behind, a snapshot damaged on disk is
// refused before anything is removed, and a restore puts the same bytes back
// into a fresh volume.

const docker = new Docker();
const image = inject('stack').agentImage;
const id = `snapthread-${randomUUID().slice(0, 8)}`;
const name = agentContainerName(id);
const volume = agentVolumeName(id);
const FILES = 24;
const blobs = new Map<string, Buffer>(Array.from({ length: FILES }, (_, i) => [`data/blob-${i}.bin`, randomBytes(1024 * 1024)]));
let dir: string;
/** The volume's files as the engine's own archive has them (the image seeds a few of its own beside the blobs). */
let reference: Map<string, Buffer>;

const makeContainer = () => docker.createContainer({ name, Image: image, HostConfig: { Mounts: [{ Type: 'volume', Source: volume, Target: '/data' }] } });

/** Every regular file in a tar, by name. */
async function filesInTar(stream: NodeJS.ReadableStream): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const extract = tar.extract();
  extract.on('entry', (h, s, next) => {
    const parts: Buffer[] = [];
    s.on('data', (d: unknown) => void parts.push(d as Buffer));
    s.on('end', () => {
      if (h.type === 'file') out.set(h.name, Buffer.concat(parts));
      next();
    });
  });
  await pipeline(stream, extract);
  return out;
}

/** Files this process holds open under `d` (a deleted one shows as "… (deleted)"). */
async function openFilesUnder(d: string): Promise<string[]> {
  const fds = await readdir('/proc/self/fd');
  const targets = await Promise.all(fds.map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
  return targets.filter((t) => t.startsWith(d));
}

describe('volume snapshots in a worker thread (real engine)', () => {
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'hangar-snapthread-'));
    await docker.createVolume({ Name: volume });
    const c = await makeContainer();
    const pack = tar.pack();
    for (const [n, b] of blobs) pack.entry({ name: n, uid: 10001, gid: 10001 }, b);
    pack.finalize();
    await c.putArchive(pack as unknown as NodeJS.ReadableStream, { path: '/' });
    reference = await filesInTar((await c.getArchive({ path: '/data' })) as NodeJS.ReadableStream);
    for (const [n, b] of blobs) expect(reference.get(n)?.equals(b), n).toBe(true);
  });

  const sameFiles = (got: Map<string, Buffer>) => {
    expect([...got.keys()].sort()).toEqual([...reference.keys()].sort());
    for (const [n, b] of reference) expect(got.get(n)!.equals(b), n).toBe(true);
  };

  afterAll(async () => {
    await docker.getContainer(name).remove({ force: true }).catch(() => undefined);
    await docker.getVolume(volume).remove().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  let snap: Snapshot;

  it('writes the volume as a tar whose size and sha256 are what the activity reports, heartbeating byte counts', async () => {
    const acts = createImageUpdateActivities({ docker, snapshotDir: dir, minFreeBytes: 0 });
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    snap = await env.run(acts.snapshotVolume, { containerName: name, agentId: id, key: 'k1' });
    const onDisk = await readFile(snap.path);
    expect(snap.bytes).toBe(onDisk.length);
    expect(snap.sha256).toBe(createHash('sha256').update(onDisk).digest('hex'));
    expect((await stat(snap.path)).mode & 0o777).toBe(0o600);
    sameFiles(await filesInTar(createReadStream(snap.path)));
    expect(beats.length).toBeGreaterThan(0);
    expect((beats[0] as { bytes: number }).bytes).toBeGreaterThan(0);
    expect(await filesUnder(dir)).toEqual([`${id}/k1.tar`]);
  });

  it('answers a missing container with a non-retryable container_missing and leaves no file', async () => {
    const acts = createImageUpdateActivities({ docker, snapshotDir: dir, minFreeBytes: 0 });
    const err = await new MockActivityEnvironment()
      .run(acts.snapshotVolume, { containerName: `${name}-nope`, agentId: `${id}-nope`, key: 'k' })
      .then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('container_missing');
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect(await filesUnder(path.join(dir, `${id}-nope`))).toEqual([]);
  });

  it('stops mid-stream when the activity is cancelled, leaving no half-written copy', async () => {
    const acts = createImageUpdateActivities({ docker, snapshotDir: dir, minFreeBytes: 0 });
    const env = new MockActivityEnvironment();
    // The first heartbeat comes with the first bytes: the stream is under way.
    let atCancel = 0;
    env.once('heartbeat', (d: unknown) => {
      atCancel = (d as { bytes: number }).bytes;
      env.cancel();
    });
    const err = await env.run(acts.snapshotVolume, { containerName: name, agentId: id, key: 'cancelled' }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(CancelledFailure);
    // Closed as well as deleted: a file still open would keep its space.
    expect(await openFilesUnder(dir)).toEqual([]);
    expect(atCancel).toBeGreaterThan(0);
    expect(atCancel).toBeLessThan(snap.bytes);
    expect(await filesUnder(dir)).toEqual([`${id}/k1.tar`]);
  });

  it('refuses to restore a snapshot damaged on disk, before touching the container or its volume', async () => {
    const acts = createImageUpdateActivities({ docker, snapshotDir: dir, minFreeBytes: 0 });
    const env = new MockActivityEnvironment();
    const copy = (await env.run(acts.snapshotVolume, { containerName: name, agentId: id, key: 'damaged' })) as Snapshot;
    const fh = await open(copy.path, 'r+');
    const at = Math.floor(copy.bytes / 2);
    const [b] = (await fh.read(Buffer.alloc(1), 0, 1, at)).buffer;
    await fh.write(Buffer.from([b ^ 0xff]), 0, 1, at);
    await fh.close();
    const before = await docker.getContainer(name).inspect();
    const spec = { agentId: id, instanceId: 'test', ownerKind: 'user', ownerId: 'test', containerName: name, volumeName: volume } as ContainerSpec;
    const err = await env.run(acts.restoreVolume, { spec, image, snapshot: copy }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('snapshot_corrupt');
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect((await docker.getContainer(name).inspect()).Id).toBe(before.Id);
    sameFiles(await filesInTar((await docker.getContainer(name).getArchive({ path: '/data' })) as NodeJS.ReadableStream));
    await rm(copy.path);
  });

  it('restores the snapshot into a fresh volume, byte for byte', async () => {
    const acts = createImageUpdateActivities({ docker, snapshotDir: dir, minFreeBytes: 0 });
    // Something the restore must drop: it was written after the snapshot.
    const c = docker.getContainer(name);
    const extra = tar.pack();
    extra.entry({ name: 'data/after-snapshot.txt' }, 'not in the snapshot');
    extra.finalize();
    await c.putArchive(extra as unknown as NodeJS.ReadableStream, { path: '/' });
    await c.remove({ force: true });
    const spec = { agentId: id, instanceId: 'test', ownerKind: 'user', ownerId: 'test', containerName: name, volumeName: volume } as ContainerSpec;
    const env = new MockActivityEnvironment();
    const { bytes } = (await env.run(acts.restoreVolume, { spec, image, snapshot: snap })) as { bytes: number };
    expect(bytes).toBe(snap.bytes);
    await makeContainer();
    sameFiles(await filesInTar((await docker.getContainer(name).getArchive({ path: '/data' })) as NodeJS.ReadableStream));
  });
});
