import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Runtime, Worker, makeTelemetryFilterString, DefaultLogger } from '@temporalio/worker';
import { inject } from 'vitest';
import type { createAgentActivities } from '../../activities/agent.activities.ts';
import type { createDockerActivities } from '../../activities/docker.activities.ts';
import type { createFleetActivities } from '../../activities/fleet.activities.ts';
import type { createImageUpdateActivities } from '../../activities/image-update.activities.ts';
import type { createQuotaActivities } from '../../activities/quota.activities.ts';
import type { createStorageActivities } from '../../activities/storage.activities.ts';
import type { createHealthActivities } from '../../activities/health.activities.ts';
import type { createOnboardingActivities } from '../../activities/onboarding.activities.ts';
import type { createRolloutActivities } from '../../activities/rollout.activities.ts';
import type { createMemberActivities } from '../../activities/member.activities.ts';
import type { createMemberPushActivities } from '../../activities/member-push.activities.ts';
import { dockerTaskQueue } from '../../core/contracts/agent.contract.ts';

// The workflow tier: Hangar's real workflow bundle on Temporal's time-skipping
// test server, with every activity a plain function. No Docker, no database:
// timers of minutes or hours pass in milliseconds, and each test controls
// exactly what an activity answers and when.

export type ControlActivities = ReturnType<typeof createAgentActivities> &
  ReturnType<typeof createRolloutActivities> &
  ReturnType<typeof createOnboardingActivities> &
  ReturnType<typeof createQuotaActivities> &
  ReturnType<typeof createMemberActivities> &
  ReturnType<typeof createFleetActivities>;
export type HostActivities = ReturnType<typeof createDockerActivities> &
  ReturnType<typeof createImageUpdateActivities> &
  ReturnType<typeof createStorageActivities> &
  ReturnType<typeof createHealthActivities> &
  ReturnType<typeof createMemberPushActivities>;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const historiesDir = path.join(root, 'test/workflow/histories');

let runtimeInstalled = false;
/** The SDK logs every workflow warning (e.g. an agent start that failed on purpose); tests want only errors. */
export function quietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  try {
    Runtime.install({
      logger: new DefaultLogger('ERROR'),
      telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }) } },
    });
  } catch {
    // Already installed in this process (another file in the same worker): keep it.
  }
}

let bundleCode: string | undefined;
export function workflowBundle(): { code: string } {
  bundleCode ??= readFileSync(inject('workflowTier').workflowBundlePath, 'utf8');
  return { code: bundleCode };
}

export interface Tier {
  env: TestWorkflowEnvironment;
  client: Client;
  /** The control queue: workflows and database-side activities. */
  taskQueue: string;
  /** The Docker host whose `docker-<id>` queue the host activities serve. */
  hostId: string;
  shutdown(): Promise<void>;
}

/**
 * One time-skipping server per test file (its clock is global: files must not
 * share it), a control worker running the bundle, and a worker for one Docker
 * host's queue.
 */
export async function startTier(opts: {
  name: string;
  control: Partial<ControlActivities>;
  host?: Partial<HostActivities>;
  hostId?: string;
}): Promise<Tier> {
  quietRuntime();
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: inject('workflowTier').testServerPath } },
  });
  const taskQueue = `wf-${opts.name}`;
  const hostId = opts.hostId ?? `host-${opts.name}`;
  let workers: Worker[];
  try {
    workers = await Promise.all([
      Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: workflowBundle(), activities: opts.control }),
      ...(opts.host ? [Worker.create({ connection: env.nativeConnection, taskQueue: dockerTaskQueue(hostId), activities: opts.host })] : []),
    ]);
  } catch (err) {
    await env.teardown();
    throw err;
  }
  const running = Promise.all(workers.map((w) => w.run()));
  return {
    env,
    client: env.client,
    taskQueue,
    hostId,
    async shutdown() {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await running;
      await env.teardown();
    },
  };
}

/** Polls until `fn` returns something truthy: bounded in count and in time. */
export async function waitFor<T>(fn: () => T | Promise<T>, what: string, timeoutMs = 10_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 2000 && Date.now() < deadline; i++) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

type HistoryEvent = NonNullable<Awaited<ReturnType<WorkflowHandle['fetchHistory']>>['events']>[number];

export async function historyEvents(handle: WorkflowHandle): Promise<HistoryEvent[]> {
  return (await handle.fetchHistory()).events ?? [];
}

/**
 * Resolves once the workflow has run a workflow task after the latest signal
 * named `name`: its handler has run. Signals carry no reply, so this is how a
 * test waits for one instead of sleeping.
 */
export async function signalHandled(handle: WorkflowHandle, name: string): Promise<void> {
  await waitFor(async () => {
    const events = await historyEvents(handle);
    let at = -1;
    events.forEach((e, i) => {
      if (e.workflowExecutionSignaledEventAttributes?.signalName === name) at = i;
    });
    return at >= 0 && events.slice(at + 1).some((e) => e.workflowTaskCompletedEventAttributes);
  }, `the workflow to handle signal ${name}`);
}

/** Names of the activities a workflow run scheduled, in order. */
export async function scheduledActivities(handle: WorkflowHandle): Promise<string[]> {
  return (await historyEvents(handle))
    .map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name)
    .filter((n): n is string => Boolean(n));
}

/**
 * `npm run histories:record` sets HANGAR_RECORD_HISTORIES: then the runs a
 * test names are written to test/workflow/histories/<name>.json, which the
 * replay test replays on every `npm test`.
 */
export async function keepHistory(handle: WorkflowHandle, name: string): Promise<void> {
  if (!process.env.HANGAR_RECORD_HISTORIES) return;
  mkdirSync(historiesDir, { recursive: true });
  // protobufjs's own JSON (what JSON.stringify gives), read back by loadHistory.
  writeFileSync(path.join(historiesDir, `${name}.json`), `${JSON.stringify(await handle.fetchHistory(), null, 1)}\n`);
}

/**
 * A history written by keepHistory, as the proto object the replayer takes.
 * Not the SDK's historyFromJSON (the CLI's format): with npm's current layout
 * (two copies of protobufjs 8 under @temporalio/common and @temporalio/proto)
 * it fails with "type must be a Type".
 */
export function loadHistory(file: string): temporal.api.history.v1.History {
  return temporal.api.history.v1.History.fromObject(JSON.parse(readFileSync(file, 'utf8')));
}
