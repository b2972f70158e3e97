import path from 'node:path';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Worker, type WorkflowBundleOption } from '@temporalio/worker';
import Docker from 'dockerode';
import { createAgentActivities } from '../activities/agent.activities.ts';
import { createAgentNetworks, createDockerActivities } from '../activities/docker.activities.ts';
import { createEgressActivities, createEgressEnforcer } from '../activities/egress.activities.ts';
import { createFleetActivities } from '../activities/fleet.activities.ts';
import { createFederationActivities } from '../activities/federation.activities.ts';
import { createImageUpdateActivities } from '../activities/image-update.activities.ts';
import { createMemberActivities } from '../activities/member.activities.ts';
import { createMemberPushActivities } from '../activities/member-push.activities.ts';
import { createRolloutActivities } from '../activities/rollout.activities.ts';
import { createQuotaActivities } from '../activities/quota.activities.ts';
import { createHealthActivities } from '../activities/health.activities.ts';
import { createStorageActivities, createVolumeSizer } from '../activities/storage.activities.ts';
import { createOnboardingActivities } from '../activities/onboarding.activities.ts';
import type { HangarConfig } from '../core/config.ts';
import { CONTROL_TASK_QUEUE, dockerTaskQueue } from '../core/contracts/agent.contract.ts';
import { checkDatabaseRole } from '../core/db.ts';
import { registerFleetSchedules, syncImagePollers } from '../core/control/schedules.ts';
import { createCore } from '../core/hangar.ts';
import { createEgressFirewall } from '../core/runtime/egress-firewall.runtime.ts';
import { repoRoot } from '../core/runtime/paths.runtime.ts';

// From the checkout's sources, also when this file runs compiled (dist/worker/).
export const workflowsPath = () => path.join(repoRoot, 'workflows/index.ts');

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
  const core = createCore(config, { databaseUrl: opts.databaseUrl, temporalAddress: opts.temporalAddress, apiPort: opts.apiPort });
  await checkDatabaseRole(core.db, config.mode, (m) => log(`WARNING: ${m}`));
  const role = config.workerRole;
  const polls = { control: role !== 'docker', docker: role !== 'control' };
  // A control-only process never touches the engine: in a split deployment
  // only the Docker-host worker holds the socket.
  const docker = new Docker();
  if (polls.docker) {
    await docker.ping();
    await core.agents.registerDockerHost(config.dockerHostId, process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock');
  }

  if (polls.control) {
    await core.temporal.registerSearchAttributes();
    // The federation identity is made at first boot, by whichever process gets there first.
    await core.federationIdentity.ensure();
    if (opts.registerSchedules !== false) {
      await registerFleetSchedules(core.temporal, config);
      await syncImagePollers(core.temporal, await core.fleet.get(), { healthPollMs: config.updateHealthPollMs });
    }
  }

  // The Docker-host worker owns this engine's egress policy: in place before
  // it takes any task (production refuses to start without it).
  const networks = createAgentNetworks(docker);
  const egress = createEgressEnforcer({
    docker,
    networks,
    firewall: createEgressFirewall(),
    config,
    apiPort: opts.apiPort,
    loadAllowlist: () => core.egress.entries(),
    log,
  });
  if (polls.docker) {
    try {
      await egress.start();
    } catch (err) {
      await core.close();
      throw err;
    }
  }

  const connection = await NativeConnection.connect({ address: opts.temporalAddress });
  const workers: Worker[] = [];
  if (polls.control) {
    const workflowBundle = opts.workflowBundle ?? (await buildWorkflowBundle());
    workers.push(
      await Worker.create({
        connection,
        namespace: config.temporalNamespace,
        taskQueue: CONTROL_TASK_QUEUE,
        workflowBundle,
        maxCachedWorkflows: config.workerMaxCachedWorkflows,
        activities: {
          ...createAgentActivities(core),
          ...createOnboardingActivities(core),
          ...createRolloutActivities({ core }),
          ...createQuotaActivities({ core }),
          ...createMemberActivities({ core }),
          ...createFleetActivities({ core }),
          ...createFederationActivities({ core }),
        },
        shutdownGraceTime: '5 seconds',
      }),
    );
  }
  if (polls.docker) {
    // One df at a time per engine, shared by the reconciler and snapshot space checks.
    const sizer = createVolumeSizer(docker);
    workers.push(
      await Worker.create({
        connection,
        namespace: config.temporalNamespace,
        taskQueue: dockerTaskQueue(config.dockerHostId),
        activities: {
          ...createDockerActivities({ docker, keyring: core.keyring, networks, egress }),
          ...createEgressActivities({ enforcer: egress }),
          ...createImageUpdateActivities({
            docker,
            sizer,
            snapshotDir: config.snapshotDir ?? path.resolve(config.dataDir, 'snapshots'),
            minFreeBytes: config.snapshotMinFreeMb * 1024 * 1024,
          }),
          ...createStorageActivities({ sizer }),
          ...createHealthActivities({ docker, timeoutMs: config.healthCheckTimeoutMs }),
          ...createMemberPushActivities({ keyring: core.keyring }),
        },
        shutdownGraceTime: '5 seconds',
      }),
    );
  }
  log(`polling ${workers.map((w) => w.options.taskQueue).join(' and ')}`);
  const done = Promise.all(workers.map((w) => w.run())).then(async () => {
    await connection.close();
    await core.close();
  });
  return {
    done,
    async shutdown() {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await done;
    },
  };
}
