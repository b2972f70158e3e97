import type Docker from 'dockerode';
import { LABEL_INSTANCE } from '../core/contracts/agent.contract.ts';

// How much each agent volume holds, as the Docker engine itself counts it.
//
// One `GET /system/df` answers for every volume on the engine, and it works
// against any engine the worker can reach (a remote DOCKER_HOST included). It
// reports the apparent size of the files (what `du --apparent-size` says). On
// engine 20.10 with 40 volumes of 2,000 files each plus one of 200 MB it took
// ≈ 270 ms, i.e. the daemon walks ≈ 300k files a second; the alternative, a
// short-lived helper container running `du` per volume, took ≈ 255 ms for ONE
// volume (create, start, wait, remove), so it would not scale to a fleet.
// Engines ≥ 23 honour `type=volume` and skip images and containers; 20.10
// ignores it and computes them too (cheap: image sizes are cached).

export interface VolumeUsage {
  bytes: number;
  labels: Record<string, string>;
}

interface DfVolume {
  Name: string;
  Labels?: Record<string, string> | null;
  UsageData?: { Size?: number; RefCount?: number } | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Sizes of every volume, shared by the callers of one worker: one df at a
 * time (20.10 refuses a second one while the first runs), and an answer at
 * most `maxAgeMs` old is reused (a rollout wave checks many agents at once).
 */
export function createVolumeSizer(docker: Docker) {
  let last: { at: number; sizes: Map<string, VolumeUsage> } | null = null;
  let inflight: Promise<Map<string, VolumeUsage>> | null = null;

  async function df(): Promise<Map<string, VolumeUsage>> {
    for (let attempt = 1; ; attempt++) {
      try {
        const answer = await new Promise<{ Volumes?: DfVolume[] | null }>((resolve, reject) => {
          docker.modem.dial(
            { path: '/system/df?', method: 'GET', options: { type: 'volume' }, statusCodes: { 200: true, 400: 'bad parameter', 500: 'server error' } },
            (err, data) => (err ? reject(err) : resolve(data as { Volumes?: DfVolume[] | null })),
          );
        });
        const sizes = new Map<string, VolumeUsage>();
        for (const v of answer.Volumes ?? []) {
          // -1 means "not computed": unknown, not empty.
          const size = v.UsageData?.Size;
          if (typeof size === 'number' && size >= 0) sizes.set(v.Name, { bytes: size, labels: v.Labels ?? {} });
        }
        return sizes;
      } catch (err) {
        // Another process's df is running (engine 20.10): wait for it, bounded.
        if (attempt < 40 && /already running/i.test((err as Error).message ?? '')) {
          await sleep(Math.min(250 * attempt, 2000));
          continue;
        }
        throw err;
      }
    }
  }

  return {
    async sizes(maxAgeMs = 5000): Promise<Map<string, VolumeUsage>> {
      if (last && Date.now() - last.at <= maxAgeMs) return last.sizes;
      inflight ??= df()
        .then((sizes) => {
          last = { at: Date.now(), sizes };
          return sizes;
        })
        .finally(() => {
          inflight = null;
        });
      return inflight;
    },
  };
}

export type VolumeSizer = ReturnType<typeof createVolumeSizer>;

/** Docker-host side of the storage cap: run by fleet-reconcile on each engine's queue. */
export function createStorageActivities({ sizer }: { sizer: VolumeSizer }) {
  return {
    /** Bytes per volume of this Hangar installation's agents on this engine. */
    async measureAgentVolumes(instanceId: string): Promise<{ sizes: Record<string, number>; measuredAt: string }> {
      const all = await sizer.sizes(0);
      const sizes: Record<string, number> = {};
      for (const [name, v] of all) if (v.labels[LABEL_INSTANCE] === instanceId) sizes[name] = v.bytes;
      return { sizes, measuredAt: new Date().toISOString() };
    },
  };
}
