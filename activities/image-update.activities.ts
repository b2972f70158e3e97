import type { ImageDescription } from '../core/contracts/rollout.contract.ts';
import { mkdir, rename, rm, stat, statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { MessageChannel } from 'node:worker_threads';
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type Docker from 'dockerode';
import { Piscina } from 'piscina';
import tar from 'tar-stream';
import { LABEL_AGENT_ID, LABEL_INSTANCE, LABEL_MANAGED, LABEL_OWNER, type ContainerSpec } from '../core/contracts/agent.contract.ts';
import { SNAPSHOT_CORRUPT, SNAPSHOT_NO_SPACE } from '../core/contracts/rollout.contract.ts';
import { createVolumeSizer, type VolumeSizer } from './storage.activities.ts';

// Docker side of image updates, on the engine that holds the agent's volume:
// what an image is (digest, changelog), and the volume snapshot a rollback
// restores. Snapshots stream between the Docker archive API and local disk,
// never through workflow payloads.

export interface ImageUpdateDeps {
  docker: Docker;
  /** Where this engine's worker keeps volume snapshots. */
  snapshotDir: string;
  /**
   * Free space a snapshot must leave behind on the snapshot disk, which may be
   * the disk Postgres writes to: a snapshot never eats into it.
   */
  minFreeBytes?: number;
  sizer?: VolumeSizer;
}

export interface Snapshot {
  path: string;
  bytes: number;
  sha256: string;
}

const isStatus = (err: unknown, code: number) => (err as { statusCode?: number })?.statusCode === code;
const CHANGELOG_LABEL = 'dev.hangar.changelog';
const safeName = (s: string) => s.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 120);

const MB = 1024 * 1024;
const mb = (n: number) => `${(n / MB).toFixed(1)} MB`;

/** What the thread module's `snapshot` gives back. */
type SnapshotOutcome = { bytes: number; sha256: string } | { failure: { type: string; message: string } };

// Snapshot and restore bytes flow through worker threads with heaps of their own
// (the thread module says why). One pool per process, made on first use;
// threads idle for 30 s go away, so a worker between rollouts holds none.
let pool: Piscina | null = null;
const streamThreads = () =>
  (pool ??= new Piscina({
    filename: new URL('./workers/volume-snapshot.worker.mjs', import.meta.url).href,
    minThreads: 0,
    maxThreads: Math.max(1, Math.min(4, os.availableParallelism())),
    idleTimeout: 30_000,
  }));

/**
 * The engine the thread must reach: the plain fields of this dockerode's
 * connection (socket or host, TLS material, API version). A socket path that
 * dockerode looks up itself is left out: the thread's modem looks it up the
 * same way (DOCKER_HOST, then the default socket).
 */
function modemOptions(docker: Docker): Record<string, unknown> {
  const modem = docker.modem as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  const socketPath = typeof modem.socketPath === 'string' ? modem.socketPath : modem.socketPathCache;
  if (typeof socketPath === 'string') out.socketPath = socketPath;
  for (const k of ['host', 'port', 'protocol', 'version', 'ca', 'cert', 'key', 'timeout'] as const) {
    const v = modem[k];
    if (typeof v === 'string' || typeof v === 'number' || Buffer.isBuffer(v)) out[k] = v;
  }
  return out;
}

export function createImageUpdateActivities({ docker, snapshotDir, minFreeBytes = 1024 * MB, sizer = createVolumeSizer(docker) }: ImageUpdateDeps) {
  /** Bytes promised to snapshots being written by this worker: a wave's snapshots must fit together. */
  let reserved = 0;

  async function freeBytes(): Promise<number> {
    await mkdir(snapshotDir, { recursive: true, mode: 0o700 });
    const fs = await statfs(snapshotDir);
    // bavail: what an unprivileged writer may use (the root reserve is not ours).
    return Number(fs.bavail) * Number(fs.bsize);
  }

  const noSpace = (message: string) => ApplicationFailure.nonRetryable(message, SNAPSHOT_NO_SPACE);

  /** Room for this volume plus the margin, besides what other snapshots here have reserved; the volume's size when there is. */
  async function checkSpace(volumeName: string): Promise<{ volumeBytes: number; freeBytes: number }> {
    // Measured now (callers at the same moment share one df): a figure from the last reconcile may be a minute old.
    const volumeBytes = (await sizer.sizes(0)).get(volumeName)?.bytes ?? 0;
    const free = await freeBytes();
    if (free - reserved < volumeBytes + minFreeBytes) {
      throw noSpace(
        `not enough free space in ${snapshotDir} to snapshot ${volumeName}: the volume holds ${mb(volumeBytes)}, ` +
          `${mb(free)} are free${reserved ? ` (${mb(reserved)} promised to snapshots in progress)` : ''}, ` +
          `and ${mb(minFreeBytes)} must stay free (HANGAR_SNAPSHOT_MIN_FREE_MB)`,
      );
    }
    return { volumeBytes, freeBytes: free };
  }

  /**
   * Runs `name` of the stream thread module with a line to it: a heartbeat at
   * most once a second while bytes flow (a stuck stream is noticed, a live one
   * is not killed), and a cancelled activity tells the thread to stop, which
   * closes its files before it answers.
   */
  async function inThread<T extends object>(name: 'snapshot' | 'digest' | 'restore', task: Record<string, unknown>): Promise<T> {
    const ctx = Context.current();
    const { port1, port2 } = new MessageChannel();
    let last = 0;
    port1.on('message', ({ bytes }: { bytes: number }) => {
      const now = Date.now();
      if (now - last > 1000) {
        last = now;
        ctx.heartbeat({ bytes });
      }
    });
    const cancel = () => port1.postMessage('cancel');
    ctx.cancellationSignal.addEventListener('abort', cancel, { once: true });
    try {
      const out = (await streamThreads().run({ ...task, progress: port2 }, { name, transferList: [port2] })) as T | { cancelled: true };
      if ('cancelled' in out) throw new CancelledFailure(`${name} cancelled`);
      return out;
    } finally {
      ctx.cancellationSignal.removeEventListener('abort', cancel);
      port1.close();
    }
  }

  async function readChangelogFile(imageId: string): Promise<string | null> {
    const c = await docker.createContainer({ Image: imageId, Cmd: ['true'], Labels: { [LABEL_MANAGED]: 'helper' } });
    try {
      const stream = (await c.getArchive({ path: '/app/changelog.json' })) as NodeJS.ReadableStream;
      const extract = tar.extract();
      let text = '';
      extract.on('entry', (_h, s, next) => {
        s.on('data', (d: unknown) => (text += String(d)));
        s.on('end', next);
        s.resume();
      });
      await pipeline(stream, extract);
      const parsed = JSON.parse(text) as { version?: string; changes?: string[] } | { version?: string; changes?: string[] }[];
      const latest = Array.isArray(parsed) ? parsed[0] : parsed;
      return latest?.changes?.join('\n') ?? null;
    } catch {
      return null;
    } finally {
      await c.remove({ force: true }).catch(() => undefined);
    }
  }

  return {
    /** Resolve a tag in the local image store; the registry's API would go here where one is configured. */
    async describeImage(image: string): Promise<ImageDescription> {
      let info: Docker.ImageInspectInfo;
      try {
        info = await docker.getImage(image).inspect();
      } catch (err) {
        if (isStatus(err, 404)) throw ApplicationFailure.nonRetryable(`image ${image} is not present on this Docker host`, 'image_missing');
        throw err;
      }
      const labels = info.Config?.Labels ?? {};
      const changelog = labels[CHANGELOG_LABEL] ?? (await readChangelogFile(info.Id));
      return { image, digest: info.Id, version: labels['org.opencontainers.image.version'] ?? null, changelog };
    },

    /** The image a container was created from (null when there is no container). */
    async containerImage(containerName: string): Promise<string | null> {
      try {
        return (await docker.getContainer(containerName).inspect()).Image;
      } catch (err) {
        if (isStatus(err, 404)) return null;
        throw err;
      }
    },

    /**
     * Before an agent is touched: is there room to snapshot its volume? A
     * non-retryable `snapshot_no_space` failure when not (the rollout skips
     * the agent, which keeps running on its old image).
     */
    async checkSnapshotSpace(req: { volumeName: string }): Promise<{ volumeBytes: number; freeBytes: number }> {
      return checkSpace(req.volumeName);
    },

    /** Tar of the container's /data, written beside the other snapshots; re-running overwrites. */
    async snapshotVolume(req: { containerName: string; agentId: string; key: string; volumeName?: string }): Promise<Snapshot> {
      const dir = path.join(snapshotDir, safeName(req.agentId));
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const file = path.join(dir, `${safeName(req.key)}.tar`);
      const part = `${file}.part`;
      // A re-run after a crash: the half-written copy must not count against the space.
      await rm(part, { force: true });
      // Checked again here, with this worker's other snapshots counted: the
      // agents of one wave were all checked before any of them started writing.
      const { volumeBytes } = req.volumeName ? await checkSpace(req.volumeName) : { volumeBytes: 0 };
      reserved += volumeBytes;
      try {
        const out = await inThread<SnapshotOutcome>('snapshot', {
          modem: modemOptions(docker),
          containerName: req.containerName,
          part,
          dir: snapshotDir,
          minFreeBytes,
        });
        if ('failure' in out) throw ApplicationFailure.nonRetryable(out.failure.message, out.failure.type);
        await rename(part, file);
        return { path: file, bytes: out.bytes, sha256: out.sha256 };
      } catch (err) {
        // Refused, failed or cancelled: a half-written copy must not stay to count against the space.
        await rm(part, { force: true });
        throw err;
      } finally {
        reserved -= volumeBytes;
      }
    },

    /**
     * Put /data back exactly as the snapshot has it: a new empty volume (so
     * nothing the failed image wrote survives), filled from the tar through a
     * throwaway container that is never started.
     */
    async restoreVolume(req: { spec: ContainerSpec; image: string; snapshot: Snapshot }): Promise<{ bytes: number }> {
      const { spec, snapshot } = req;
      const st = await stat(snapshot.path).catch(() => null);
      if (!st) throw ApplicationFailure.nonRetryable(`snapshot ${snapshot.path} is missing`, 'snapshot_missing');
      // Checked before anything is removed: a snapshot damaged on disk must not
      // replace the volume there is (the rollback fails, the snapshot is kept,
      // and admins are told).
      const seen = await inThread<{ bytes: number; sha256: string }>('digest', { path: snapshot.path });
      if (seen.sha256 !== snapshot.sha256 || seen.bytes !== snapshot.bytes) {
        throw ApplicationFailure.nonRetryable(
          `snapshot ${snapshot.path} does not match what was written (${seen.bytes} bytes, sha256 ${seen.sha256.slice(0, 12)}…; written ${snapshot.bytes} bytes, ${snapshot.sha256.slice(0, 12)}…)`,
          SNAPSHOT_CORRUPT,
        );
      }
      const helperName = `${spec.containerName}-restore`;
      await docker.getContainer(helperName).remove({ force: true }).catch(() => undefined);
      await docker.getContainer(spec.containerName).remove({ force: true }).catch((err) => {
        if (!isStatus(err, 404)) throw err;
      });
      try {
        await docker.getVolume(spec.volumeName).remove();
      } catch (err) {
        if (!isStatus(err, 404)) throw err;
      }
      const labels = {
        [LABEL_MANAGED]: 'true',
        [LABEL_INSTANCE]: spec.instanceId,
        [LABEL_AGENT_ID]: spec.agentId,
        [LABEL_OWNER]: `${spec.ownerKind}:${spec.ownerId}`,
      };
      await docker.createVolume({ Name: spec.volumeName, Labels: labels });
      const helper: Docker.Container = await docker.createContainer({
        name: helperName,
        Image: req.image,
        Cmd: ['true'],
        Labels: { [LABEL_MANAGED]: 'helper', [LABEL_AGENT_ID]: spec.agentId },
        // NoCopy: the image's own /data must not be seeded under the snapshot.
        HostConfig: { Mounts: [{ Type: 'volume', Source: spec.volumeName, Target: '/data', VolumeOptions: { NoCopy: true } as Docker.MountSettings['VolumeOptions'] }] },
      });
      try {
        return await inThread<{ bytes: number }>('restore', { modem: modemOptions(docker), containerName: helperName, file: snapshot.path });
      } finally {
        await helper.remove({ force: true }).catch(() => undefined);
      }
    },

    async deleteSnapshot(req: { path: string }): Promise<void> {
      // Only ever inside the snapshot directory, whatever the caller passed.
      const resolved = path.resolve(req.path);
      if (!resolved.startsWith(path.resolve(snapshotDir) + path.sep)) {
        throw ApplicationFailure.nonRetryable('refusing to delete outside the snapshot directory', 'bad_path');
      }
      await rm(resolved, { force: true });
    },
  };
}

export type ImageUpdateActivities = ReturnType<typeof createImageUpdateActivities>;
