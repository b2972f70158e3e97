import { createRequire } from 'node:module';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Worker, type WorkflowBundleOption } from '@temporalio/worker';
import Docker from 'dockerode';
import { createAgentActivities } from '../activities/agent.activities.ts';
import { createDockerActivities } from '../activities/docker.activities.ts';
import { createImageUpdateActivities } from '../activities/image-update.activities.ts';
import { createRolloutActivities } from '../activities/rollout.activities.ts';
import { createQuotaActivities } from '../activities/quota.activities.ts';
import { createStorageActivities, createVolumeSizer } from '../activities/storage.activities.ts';
import { createOnboardingActivities } from '../activities/onboarding.activities.ts';
import type { HangarConfig } from '../core/config.ts';
import { CONTROL_TASK_QUEUE, dockerTaskQueue } from '../core/contracts/agent.contract.ts';
import { checkDatabaseRole } from '../core/db.ts';
import { syncImagePollers } from '../core/fleet-schedules.ts';
import { createCore } from '../core/hangar.ts';
import { registerSchedules, registerSearchAttributes } from './temporal-setup.ts';

const require = createRequire(import.meta.url);

export const workflowsPath = () => require.resolve('../workflows/index.ts');

export async function buildWorkflowBundle(): Promise<{ code: string }> {
  // Quiet: webpack's report is noise in `npm start` and test output.
  return bundleWorkflowCode({ workflowsPath: workflowsPath(), logger: new DefaultLogger('WARN') });
}

export interface RunningWorkers {
  /** Resolves when both workers have stopped. */
  done: Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * The control worker (workflows + DB activities) and the Docker-host worker
 * for the local engine. More engines = more Docker-host workers, each on its
 * own `docker-<hostId>` queue; Temporal does the routing.
 */
export async function startWorkers(opts: {
  config: HangarConfig;
  databaseUrl: string;
  temporalAddress: string;
  apiPort?: () => number;
  workflowBundle?: WorkflowBundleOption;
  registerSchedules?: boolean;
  log?: (msg: string) => void;
}): Promise<RunningWorkers> {
  const { config } = opts;
  const log = opts.log ?? ((m: string) => console.log(`[worker] ${m}`));
  const core = createCore(config, { databaseUrl: opts.databaseUrl, apiPort: opts.apiPort });
  await checkDatabaseRole(core.db, config.mode, (m) => log(`WARNING: ${m}`));
  const docker = new Docker();
  await docker.ping();
  await core.db.dockerHost.upsert({
    where: { id: config.dockerHostId },
    create: { id: config.dockerHostId, endpoint: process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock', labels: {}, capacity: 100, status: 'active' },
    update: { status: 'active' },
  });

  // Kept open: rollout activities call into agent lifecycles through it.
  const clientConn = await Connection.connect({ address: opts.temporalAddress });
  const client = new Client({ connection: clientConn, namespace: config.temporalNamespace });
  await registerSearchAttributes(clientConn, config.temporalNamespace);
  if (opts.registerSchedules !== false) {
    await registerSchedules(client, config);
    await syncImagePollers(client, await core.fleet.get(), { healthPollMs: config.updateHealthPollMs });
  }

  const connection = await NativeConnection.connect({ address: opts.temporalAddress });
  const workflowBundle = opts.workflowBundle ?? (await buildWorkflowBundle());
  const control = await Worker.create({
    connection,
    namespace: config.temporalNamespace,
    taskQueue: CONTROL_TASK_QUEUE,
    workflowBundle,
    activities: {
      ...createAgentActivities({ agents: core.agents, db: core.db }),
      ...createOnboardingActivities(core),
      ...createRolloutActivities({ core, client }),
      ...createQuotaActivities({ core, client }),
    },
    shutdownGraceTime: '5 seconds',
  });
  // One df at a time per engine, shared by the reconciler and snapshot space checks.
  const sizer = createVolumeSizer(docker);
  const dockerWorker = await Worker.create({
    connection,
    namespace: config.temporalNamespace,
    taskQueue: dockerTaskQueue(config.dockerHostId),
    activities: {
      ...createDockerActivities({ docker, keyring: core.keyring }),
      ...createImageUpdateActivities({
        docker,
        sizer,
        snapshotDir: config.snapshotDir ?? path.resolve(config.dataDir, 'snapshots'),
        minFreeBytes: config.snapshotMinFreeMb * 1024 * 1024,
      }),
      ...createStorageActivities({ sizer }),
    },
    shutdownGraceTime: '5 seconds',
  });
  log(`polling ${CONTROL_TASK_QUEUE} and ${dockerTaskQueue(config.dockerHostId)}`);
  const done = Promise.all([control.run(), dockerWorker.run()]).then(async () => {
    await connection.close();
    await clientConn.close();
    await core.close();
  });
  return {
    done,
    async shutdown() {
      for (const w of [control, dockerWorker]) if (w.getState() === 'RUNNING') w.shutdown();
      await done;
    },
  };
}
