import {
  Client,
  Connection,
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  isGrpcServiceError,
  WithStartWorkflowOperation,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateStage,
  type WorkflowHandle,
} from '@temporalio/client';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import proto from '@temporalio/proto';
import type { HangarConfig } from '../config.ts';
import {
  AGENT_LIFECYCLE_WORKFLOW,
  agentWorkflowId,
  applyImageUpdate,
  configChangedSignal,
  CONTROL_TASK_QUEUE,
  ensureRunningUpdate,
  reapIfIdleSignal,
  reconcileSignal,
  restartUpdate,
  SEARCH_ATTRIBUTES,
  stateQuery,
  stopUpdate,
  type AgentLifecycleWorkflow,
  type LifecycleState,
  type OwnerKind,
  type ReconcileRequest,
} from '../contracts/agent.contract.ts';
import {
  ONBOARDING_WORKFLOW,
  ONBOARDING_WORKFLOW_ID,
  onboardingStateQuery,
  type OnboardingState,
  type OnboardingWorkflow,
} from '../contracts/onboarding.contract.ts';
import {
  abortRolloutSignal,
  DESCRIBE_IMAGE_WORKFLOW,
  fleetSettingsChangedSignal,
  pauseRolloutSignal,
  resumeRolloutSignal,
  ROLLOUT_WORKFLOW,
  type ApplyImageRequest,
  type ApplyImageResult,
  type DescribeImageWorkflow,
  type ImageDescription,
  type RolloutWorkflow,
  type RolloutWorkflowInput,
} from '../contracts/rollout.contract.ts';
import { EGRESS_POLICY_WORKFLOW, egressPolicyWorkflowId, type EgressPolicyWorkflow, type EgressReport } from '../contracts/egress.contract.ts';
import {
  MEMBER_PROVISIONING_WORKFLOW,
  memberProvisioningWorkflowId,
  provisioningStateQuery,
  syncMembersSignal,
  type MemberProvisioningWorkflow,
  type ProvisioningState,
} from '../contracts/workspace.contract.ts';
import {
  FEDERATION_COMMAND_WORKFLOW,
  federationStateQuery,
  killRemoteAgentSignal,
  RETIRE_AGENT_WORKFLOW,
  retireAgentWorkflowId,
  type FederationCommandInput,
  type FederationCommandState,
  type FederationCommandWorkflow,
  type RetireAgentWorkflow,
} from '../contracts/federation.contract.ts';
import { fromFailure } from './failures.ts';

/** A schedule trigger is repeated this often, each given this long to show its run (see `schedules.trigger`). */
const TRIGGER_ATTEMPTS = 5;
const TRIGGER_WAIT_MS = 3_000;

// The one place Hangar talks to Temporal's client API. The API, the
// activities, the worker and the CLI reach workflows and schedules through
// this port, and every failure comes back as a domain error (failures.ts):
// callers never see a Temporal error type.
//
// It is longer than the house's ~400 lines on purpose: one file is the
// boundary the lint and the reviews check (nothing else imports the client),
// and each domain's operations are a short group inside it.

/** What the port needs to know of an agent to start its lifecycle. */
export interface AgentRef {
  id: string;
  name: string;
  ownerKind: string;
  ownerId: string;
  dockerHostId: string;
}

export interface IntervalSchedule {
  id: string;
  workflowType: string;
  everySeconds: number;
  args?: unknown[];
  summary: string;
}

type UpdateDef = Parameters<Client['workflow']['executeUpdateWithStart']>[0];
type SignalDef = Parameters<WorkflowHandle['signal']>[0];

// gRPC status codes a batch operation is refused with (@grpc/grpc-js's `status`, not a dependency of ours).
const GRPC_ALREADY_EXISTS = 6;
const GRPC_RESOURCE_EXHAUSTED = 8;
const GRPC_FAILED_PRECONDITION = 9;
const GRPC_UNIMPLEMENTED = 12;

const AGENT_ID = defineSearchAttributeKey(SEARCH_ATTRIBUTES.agentId, SearchAttributeType.KEYWORD);
const OWNER_ID = defineSearchAttributeKey(SEARCH_ATTRIBUTES.ownerId, SearchAttributeType.KEYWORD);

export function createTemporalPort(opts: {
  config: Pick<HangarConfig, 'temporalNamespace' | 'temporalUiUrl' | 'restartDebounceSec' | 'agentStartTimeoutSec'>;
  address: string;
}) {
  const { config } = opts;
  // Lazy: connects on first use and reconnects after an outage, so a process
  // that only chats keeps working while Temporal is down.
  let connection: Connection | null = null;
  let clientInstance: Client | null = null;
  const client = async () => {
    connection ??= Connection.lazy({ address: opts.address });
    return (clientInstance ??= new Client({ connection, namespace: config.temporalNamespace }));
  };

  let observer: ((operation: string, outcome: 'ok' | 'failed') => void) | null = null;

  /** Every call goes through here: failures become domain errors. */
  async function call<T>(fallback: { code: string; message: string }, fn: (c: Client) => Promise<T>, operation?: string): Promise<T> {
    try {
      const out = await fn(await client());
      if (operation) observer?.(operation, 'ok');
      return out;
    } catch (err) {
      if (operation) observer?.(operation, 'failed');
      throw fromFailure(err, fallback);
    }
  }

  /** A handle's call where "no such workflow" is an answer (null), not an error. */
  async function existing<T>(workflowId: string, fallback: { code: string; message: string }, fn: (h: WorkflowHandle) => Promise<T>): Promise<T | null> {
    try {
      return await call(fallback, (c) => fn(c.workflow.getHandle(workflowId)));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null;
      throw err;
    }
  }

  function lifecycleStart(agent: AgentRef) {
    return new WithStartWorkflowOperation<AgentLifecycleWorkflow>(AGENT_LIFECYCLE_WORKFLOW, {
      workflowId: agentWorkflowId(agent.id),
      taskQueue: CONTROL_TASK_QUEUE,
      // One id per agent: any number of callers share one lifecycle.
      workflowIdConflictPolicy: 'USE_EXISTING',
      args: [{
        agentId: agent.id,
        dockerHostId: agent.dockerHostId,
        alwaysOn: (agent.ownerKind as OwnerKind) === 'system',
        settings: { restartDebounceMs: config.restartDebounceSec * 1000, healthTimeoutSec: config.agentStartTimeoutSec },
      }],
      typedSearchAttributes: [
        { key: AGENT_ID, value: agent.id },
        { key: OWNER_ID, value: agent.ownerId },
      ],
      staticSummary: `Agent "${agent.name}" of ${agent.ownerKind} ${agent.ownerId}`,
    });
  }

  function onboardingStart() {
    return new WithStartWorkflowOperation<OnboardingWorkflow>(ONBOARDING_WORKFLOW, {
      workflowId: ONBOARDING_WORKFLOW_ID,
      taskQueue: CONTROL_TASK_QUEUE,
      workflowIdConflictPolicy: 'USE_EXISTING',
      args: [],
      staticSummary: 'First-boot onboarding wizard',
    });
  }

  const startFailed = { code: 'agent_start_failed', message: 'The agent could not start' };

  return {
    /** Counts lifecycle operations (the API's /metrics). */
    observe(fn: (operation: string, outcome: 'ok' | 'failed') => void): void {
      observer = fn;
    },

    workflowUrl(workflowId: string): string {
      return `${config.temporalUiUrl}/namespaces/${config.temporalNamespace}/workflows/${encodeURIComponent(workflowId)}`;
    },

    /** Cheap liveness probe for /readyz. */
    async ping(): Promise<void> {
      await call({ code: 'temporal_unavailable', message: 'Temporal did not answer' }, (c) => c.connection.workflowService.getSystemInfo({}));
    },

    agents: {
      ensureRunning(agent: AgentRef): Promise<LifecycleState> {
        return call(startFailed, (c) => c.workflow.executeUpdateWithStart(ensureRunningUpdate, { args: [], startWorkflowOperation: lifecycleStart(agent) }), 'ensureRunning');
      },
      restart(agent: AgentRef, reason: string): Promise<LifecycleState> {
        return call({ code: 'agent_restart_failed', message: 'The agent could not restart' }, (c) =>
          c.workflow.executeUpdateWithStart(restartUpdate, { args: [{ reason }], startWorkflowOperation: lifecycleStart(agent) }), 'restart');
      },
      /**
       * null: the agent has no lifecycle, so nothing runs. An `updateId` makes
       * a retried caller attach to the same stop instead of sending another.
       */
      stop(agentId: string, reason: string, updateId?: string): Promise<LifecycleState | null> {
        return existing(agentWorkflowId(agentId), { code: 'agent_stop_failed', message: 'The agent could not stop' }, (h) =>
          h.executeUpdate(stopUpdate, { args: [{ reason }], ...(updateId ? { updateId } : {}) }));
      },
      /**
       * A rollout's step for one agent. The update id makes a retry (after a
       * worker died) attach to the same update instead of running a second.
       */
      applyImage(agent: AgentRef, request: ApplyImageRequest, updateId: string): Promise<ApplyImageResult> {
        return call({ code: 'agent_update_failed', message: 'The agent could not be updated' }, (c) =>
          c.workflow.executeUpdateWithStart(applyImageUpdate, { args: [request], updateId, startWorkflowOperation: lifecycleStart(agent) }));
      },
      /**
       * Starts the agent without waiting for it: answers once the lifecycle
       * has accepted the `ensureRunning` update (a federation spawn answers its
       * peer at once; the peer follows the status).
       */
      async beginRunning(agent: AgentRef): Promise<void> {
        await call(startFailed, (c) => c.workflow.startUpdateWithStart(ensureRunningUpdate, {
          args: [],
          waitForStage: WorkflowUpdateStage.ACCEPTED,
          startWorkflowOperation: lifecycleStart(agent),
        }), 'ensureRunning');
      },
      /**
       * Ends an agent's lifecycle for good (a retired federated agent, a removed
       * system agent; its container is gone first); false: it had none.
       */
      async terminate(agentId: string, reason: string): Promise<boolean> {
        const done = await existing(agentWorkflowId(agentId), { code: 'agent_stop_failed', message: 'The agent\'s lifecycle could not be ended' }, async (h) => {
          const d = await h.describe();
          if (d.status.name === 'RUNNING') await h.terminate(reason);
          return true;
        });
        return done ?? false;
      },
      /** false: no lifecycle to tell. */
      async configChanged(agentId: string): Promise<boolean> {
        const sent = await existing(agentWorkflowId(agentId), { code: 'agent_signal_failed', message: 'The agent could not be told' }, (h) =>
          h.signal(configChangedSignal).then(() => true));
        return sent ?? false;
      },
      /** The reaper's question to one lifecycle (it decides under its lock); false: no lifecycle to ask. */
      async reapIfIdle(agentId: string): Promise<boolean> {
        const sent = await existing(agentWorkflowId(agentId), { code: 'agent_signal_failed', message: 'The agent could not be told' }, (h) =>
          h.signal(reapIfIdleSignal).then(() => true));
        return sent ?? false;
      },
      /**
       * The reaper's question to many lifecycles in one call: a Temporal batch
       * operation, which the server carries out at its own pace (an id without
       * a lifecycle is skipped there). `jobId` makes a retried call a no-op.
       * false: the server would not take the batch (another batch still runs:
       * the dev server takes one at a time per namespace; or batches are
       * disabled), and the caller asks one lifecycle at a time instead.
       */
      async reapIfIdleBatch(agentIds: string[], jobId: string): Promise<boolean> {
        return call({ code: 'agent_signal_failed', message: 'The agents could not be told' }, async (c) => {
          try {
            await c.workflowService.startBatchOperation({
              namespace: config.temporalNamespace,
              jobId,
              reason: 'idle reaper',
              executions: agentIds.map((id) => ({ workflowId: agentWorkflowId(id) })),
              signalOperation: { signal: reapIfIdleSignal.name, identity: 'hangar-idle-reaper' },
            });
            return true;
          } catch (err) {
            if (!isGrpcServiceError(err)) throw err;
            if (err.code === GRPC_ALREADY_EXISTS) return true;
            if (err.code === GRPC_RESOURCE_EXHAUSTED || err.code === GRPC_FAILED_PRECONDITION || err.code === GRPC_UNIMPLEMENTED) return false;
            throw err;
          }
        });
      },
      /** What the reconciler saw in Docker, for the lifecycle to act on; false: no lifecycle to tell. */
      async reconcile(agentId: string, request: ReconcileRequest): Promise<boolean> {
        const sent = await existing(agentWorkflowId(agentId), { code: 'agent_signal_failed', message: 'The agent could not be told' }, (h) =>
          h.signal(reconcileSignal, request).then(() => true));
        return sent ?? false;
      },
      state(agentId: string): Promise<LifecycleState | null> {
        return existing(agentWorkflowId(agentId), { code: 'agent_state_failed', message: 'The agent state could not be read' }, (h) => h.query(stateQuery));
      },
    },

    rollouts: {
      /** false: a rollout with this id is running already. */
      async start(workflowId: string, input: RolloutWorkflowInput, summary: string): Promise<boolean> {
        try {
          await call({ code: 'rollout_start_failed', message: 'The rollout could not start' }, (c) =>
            c.workflow.start<RolloutWorkflow>(ROLLOUT_WORKFLOW, {
              taskQueue: CONTROL_TASK_QUEUE,
              workflowId,
              // An admin may run a digest again after an abort; never two at once.
              workflowIdReusePolicy: 'ALLOW_DUPLICATE',
              workflowIdConflictPolicy: 'FAIL',
              args: [input],
              staticSummary: summary,
            }));
          return true;
        } catch (err) {
          if (err instanceof WorkflowExecutionAlreadyStartedError) return false;
          throw err;
        }
      },
      /** false: the rollout is no longer running. */
      async signal(workflowId: string, action: 'pause' | 'resume' | 'abort' | 'settingsChanged', reason?: string): Promise<boolean> {
        const sent = await existing(workflowId, { code: 'rollout_signal_failed', message: 'The rollout could not be told' }, async (h) => {
          if (action === 'pause') await h.signal(pauseRolloutSignal);
          else if (action === 'resume') await h.signal(resumeRolloutSignal);
          else if (action === 'abort') await h.signal(abortRolloutSignal, { reason: reason ?? 'aborted by an admin' });
          else await h.signal(fleetSettingsChangedSignal);
          return true;
        });
        return sent ?? false;
      },
      /** Asks a Docker-host worker what the image is now (the API has no Docker of its own). */
      describeImage(image: string): Promise<ImageDescription> {
        return call({ code: 'image_describe_failed', message: `Could not describe ${image}` }, (c) =>
          c.workflow.execute<DescribeImageWorkflow>(DESCRIBE_IMAGE_WORKFLOW, {
            taskQueue: CONTROL_TASK_QUEUE,
            workflowId: `describe-image/${crypto.randomUUID()}`,
            args: [{ image }],
            workflowExecutionTimeout: '1 minute',
          }));
      },
    },

    federation: {
      /** Starts the hub's workflow for one remote agent (its id is the business key: a second start is the same workflow). */
      async start(workflowId: string, input: FederationCommandInput, summary: string): Promise<void> {
        await call({ code: 'federation_start_failed', message: 'The federation command could not start' }, (c) =>
          c.workflow.start<FederationCommandWorkflow>(FEDERATION_COMMAND_WORKFLOW, {
            taskQueue: CONTROL_TASK_QUEUE,
            workflowId,
            workflowIdConflictPolicy: 'USE_EXISTING',
            args: [input],
            staticSummary: summary,
          }));
      },
      /** false: the workflow is no longer running (the agent is gone already). */
      async kill(workflowId: string, reason: string): Promise<boolean> {
        const sent = await existing(workflowId, { code: 'federation_signal_failed', message: 'The federation command could not be told' }, (h) =>
          h.signal(killRemoteAgentSignal, { reason }).then(() => true));
        return sent ?? false;
      },
      state(workflowId: string): Promise<FederationCommandState | null> {
        return existing(workflowId, { code: 'federation_state_failed', message: 'The federation command could not be read' }, (h) => h.query(federationStateQuery));
      },
      /**
       * The spoke's side of a kill: `retireAgent` stops the agent through its
       * lifecycle and removes its container, volume and row. Waits up to
       * `waitMs`: true when it finished by then.
       */
      async retire(agent: { id: string; dockerHostId: string }, reason: string, waitMs: number): Promise<boolean> {
        return call({ code: 'agent_retire_failed', message: 'The agent could not be removed' }, async (c) => {
          const handle = await c.workflow.start<RetireAgentWorkflow>(RETIRE_AGENT_WORKFLOW, {
            taskQueue: CONTROL_TASK_QUEUE,
            workflowId: retireAgentWorkflowId(agent.id),
            workflowIdConflictPolicy: 'USE_EXISTING',
            args: [{ agentId: agent.id, dockerHostId: agent.dockerHostId, reason }],
            staticSummary: `Stop and remove agent ${agent.id} (${reason})`,
          });
          let timer: NodeJS.Timeout | undefined;
          const timeout = new Promise<false>((r) => (timer = setTimeout(() => r(false), waitMs)));
          try {
            return await Promise.race([handle.result().then(() => true), timeout]);
          } finally {
            clearTimeout(timer);
          }
        });
      },
    },

    onboarding: {
      /** One wizard step: an update of the `onboarding` workflow, started on first use. */
      step<R>(def: UpdateDef, args: unknown[]): Promise<R> {
        return call({ code: 'onboarding_failed', message: 'The onboarding step failed' }, (c) =>
          c.workflow.executeUpdateWithStart(def as never, { args: args as never, startWorkflowOperation: onboardingStart() }) as Promise<R>);
      },
      /** Tells a running wizard something changed; false when none runs. */
      async signal(def: SignalDef): Promise<boolean> {
        const sent = await existing(ONBOARDING_WORKFLOW_ID, { code: 'onboarding_failed', message: 'The wizard could not be told' }, (h) => h.signal(def).then(() => true));
        return sent ?? false;
      },
      state(): Promise<OnboardingState> {
        return call({ code: 'onboarding_failed', message: 'The onboarding state could not be read' }, async (c) => {
          const op = onboardingStart();
          const handle = await c.workflow.start<OnboardingWorkflow>(ONBOARDING_WORKFLOW, { ...op.options, args: [] });
          return handle.query(onboardingStateQuery);
        });
      },
    },

    schedules: {
      /** Creates the schedule, or brings an existing one's interval and action in step. Idempotent. */
      async ensureInterval(s: IntervalSchedule): Promise<void> {
        const spec = { intervals: [{ every: `${s.everySeconds} seconds` }] };
        const action = {
          type: 'startWorkflow' as const,
          workflowType: s.workflowType,
          taskQueue: CONTROL_TASK_QUEUE,
          workflowId: s.id,
          args: s.args ?? [],
          staticSummary: s.summary,
        };
        await call({ code: 'schedule_failed', message: `Schedule ${s.id} could not be saved` }, async (c) => {
          try {
            await c.schedule.create({ scheduleId: s.id, spec, action, policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' } });
          } catch (err) {
            if (!(err instanceof ScheduleAlreadyRunning)) throw err;
            await c.schedule.getHandle(s.id).update((prev) => ({ ...prev, spec, action }));
          }
        });
      },
      async listIds(prefix: string): Promise<string[]> {
        return call({ code: 'schedule_failed', message: 'Schedules could not be listed' }, async (c) => {
          const ids: string[] = [];
          for await (const s of c.schedule.list()) if (s.scheduleId.startsWith(prefix)) ids.push(s.scheduleId);
          return ids;
        });
      },
      async remove(id: string): Promise<void> {
        await call({ code: 'schedule_failed', message: `Schedule ${id} could not be removed` }, async (c) => {
          try {
            await c.schedule.getHandle(id).delete();
          } catch (err) {
            if (!(err instanceof ScheduleNotFoundError)) throw err;
          }
        });
      },
      /**
       * Runs a schedule's action now, beside any run in flight (tests and
       * operators; the schedule keeps its own rhythm), and answers a run that
       * started after it was asked. Temporal names a schedule's runs by the
       * second and silently drops a second action within the same second
       * (temporalio/temporal#3614): a trigger landing on the second of a
       * scheduled run, or of another trigger, starts nothing. So the trigger
       * is repeated until a run that was not there before shows among the
       * schedule's recent actions (its own, or the scheduled run that took
       * its second).
       */
      async trigger(id: string): Promise<{ workflowId: string; runId: string }> {
        return call({ code: 'schedule_failed', message: `Schedule ${id} could not be triggered` }, async (c) => {
          const handle = c.schedule.getHandle(id);
          const recent = async () => (await handle.describe()).info.recentActions.map((a) => a.action.workflow);
          const before = new Set((await recent()).map((w) => w.workflowId));
          for (let attempt = 0; attempt < TRIGGER_ATTEMPTS; attempt++) {
            await handle.trigger(ScheduleOverlapPolicy.ALLOW_ALL);
            // Past the second it was sent in before the next attempt: a retry in the same second would be dropped too.
            for (let waited = 0; waited < TRIGGER_WAIT_MS; waited += 100) {
              const started = (await recent()).find((w) => !before.has(w.workflowId));
              if (started) return { workflowId: started.workflowId, runId: started.firstExecutionRunId };
              await sleep(100);
            }
          }
          throw new Error(`schedule ${id} started no run after ${TRIGGER_ATTEMPTS} triggers`);
        });
      },
    },

    egress: {
      /**
       * Applies the egress policy on one Docker host and waits up to `waitMs`
       * for its report; null when the host has not answered by then (its
       * worker applies the policy when it starts anyway).
       */
      async apply(hostId: string, waitMs: number): Promise<EgressReport | null> {
        return call({ code: 'egress_apply_failed', message: `The egress policy could not be applied on ${hostId}` }, async (c) => {
          const handle = await c.workflow.start<EgressPolicyWorkflow>(EGRESS_POLICY_WORKFLOW, {
            taskQueue: CONTROL_TASK_QUEUE,
            workflowId: egressPolicyWorkflowId(hostId),
            args: [{ hostId }],
            // The newest save wins; a run still waiting for a stopped worker is replaced.
            workflowIdConflictPolicy: 'TERMINATE_EXISTING',
            workflowIdReusePolicy: 'ALLOW_DUPLICATE',
            workflowExecutionTimeout: '1 hour',
            staticSummary: `Apply the agent egress policy on Docker host ${hostId}`,
          });
          let timer: NodeJS.Timeout | undefined;
          const timeout = new Promise<null>((r) => (timer = setTimeout(() => r(null), waitMs)));
          try {
            return await Promise.race([handle.result(), timeout]);
          } finally {
            clearTimeout(timer);
          }
        });
      },
    },

    members: {
      /** Signal-with-start of `provision/<workspaceId>`: one run per workspace, started by whichever change comes first. */
      async sync(workspaceId: string, reason: string): Promise<void> {
        await call({ code: 'member_sync_failed', message: 'The member sync could not be requested' }, (c) =>
          c.workflow.signalWithStart<MemberProvisioningWorkflow, [{ reason: string }]>(MEMBER_PROVISIONING_WORKFLOW, {
            taskQueue: CONTROL_TASK_QUEUE,
            workflowId: memberProvisioningWorkflowId(workspaceId),
            args: [{ workspaceId }],
            signal: syncMembersSignal,
            signalArgs: [{ reason }],
            staticSummary: `Provision the members of workspace ${workspaceId} into its agent`,
          }), 'memberSync');
      },
      /** null: no provisioning run at the moment (nothing owed). */
      state(workspaceId: string): Promise<ProvisioningState | null> {
        return existing(memberProvisioningWorkflowId(workspaceId), { code: 'member_sync_failed', message: 'The member sync state could not be read' }, (h) => h.query(provisioningStateQuery));
      },
    },

    /** Custom search attributes operators filter by; registered idempotently at worker start. */
    async registerSearchAttributes(): Promise<void> {
      await call({ code: 'temporal_setup_failed', message: 'Search attributes could not be registered' }, async (c) => {
        const Keyword = proto.temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
        const namespace = config.temporalNamespace;
        const known = await c.connection.operatorService.listSearchAttributes({ namespace });
        const missing = Object.values(SEARCH_ATTRIBUTES).filter((n) => !(n in (known.customAttributes ?? {})));
        if (missing.length === 0) return;
        await c.connection.operatorService.addSearchAttributes({ namespace, searchAttributes: Object.fromEntries(missing.map((n) => [n, Keyword])) });
      });
    },

    async close(): Promise<void> {
      await connection?.close().catch(() => undefined);
    },
  };
}

export type TemporalPort = ReturnType<typeof createTemporalPort>;

/** Whether a Temporal frontend answers at `address` (the dev-server launcher waits on this). */
export async function temporalAnswers(address: string): Promise<boolean> {
  try {
    const c = await Connection.connect({ address, connectTimeout: 1000 });
    try {
      await c.workflowService.getSystemInfo({});
      return true;
    } finally {
      await c.close();
    }
  } catch {
    return false;
  }
}
