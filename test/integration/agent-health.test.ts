import type Docker from 'dockerode';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { agentContainerName, agentWorkflowId, FLEET_RECONCILE_SCHEDULE_ID, UNHEALTHY_RESTARTED_EVENT } from '../../core/contracts/agent.contract.ts';
import type { ReconcileReport } from '../../workflows/fleet-reconcile.workflow.ts';
import { createTestUser, eventually, type TestUser, useScene } from '../support/hangar.harness.ts';
import { chat, giveProvider, execIn, startedAgent } from '../support/scenario.ts';

// Health beyond "running", on the real stack: a reference agent whose
// container runs but whose /readyz and /health stop answering (its test hook,
// a file only the Docker engine can put in its /tmp) fails the reconciler's
// checks, is restarted through its own lifecycle after
// HANGAR_HEALTH_FAILURES_BEFORE_RESTART of them in a row, and the restart is
// a fleet event; the healthy agent beside it is left alone.

const HANG_FILE = '/tmp/hangar-test-hang-health';


describe('health beyond running (reconciler health checks)', () => {
  const scene = useScene({
    overrides: {
      HANGAR_HEALTH_FAILURES_BEFORE_RESTART: '2',
      HANGAR_HEALTH_CHECK_TIMEOUT_MS: '500',
      // Only the runs this test triggers: a scheduled one in between would make the counts racy.
      HANGAR_RECONCILE_INTERVAL_SEC: '3600',
    },
  });

  const runningAgent = () => startedAgent(scene);

  /** Triggers the reconcile schedule now and returns that run's report. */
  async function reconcile(): Promise<ReconcileReport> {
    const schedule = scene.h.temporal.schedule.getHandle(FLEET_RECONCILE_SCHEDULE_ID);
    const seen = new Set((await schedule.describe()).info.recentActions.map((a) => a.action.workflow.workflowId));
    await schedule.trigger(ScheduleOverlapPolicy.ALLOW_ALL);
    const run = await eventually(async () => {
      const actions = (await schedule.describe()).info.recentActions;
      return actions.map((a) => a.action.workflow).find((w) => !seen.has(w.workflowId));
    }, 'the triggered reconcile run', 30_000);
    return scene.h.temporal.workflow.getHandle(run.workflowId, run.firstExecutionRunId).result() as Promise<ReconcileReport>;
  }

  const reconcileSignals = async (agentId: string) => {
    const history = await scene.h.temporal.workflow.getHandle(agentWorkflowId(agentId)).fetchHistory();
    return (history.events ?? []).filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'reconcile').length;
  };

  it('restarts, through its lifecycle, an agent that stopped answering, records why, and leaves a healthy one alone', async () => {
    const hung = await runningAgent();
    const healthy = await runningAgent();
    const before = await scene.h.core.agents.get(hung.agentId);
    const healthyBefore = await scene.h.core.agents.get(healthy.agentId);
    const container = scene.h.docker.getContainer(agentContainerName(hung.agentId));

    // Both images declare a Docker HEALTHCHECK (docker ps shows health).
    const inspected = await container.inspect();
    expect(inspected.Config.Healthcheck?.Test).toEqual(['CMD', 'node', '/app/healthcheck.mjs']);

    expect(await execIn(container, ['node', '-e', `require('node:fs').writeFileSync(${JSON.stringify(HANG_FILE)}, '')`])).toBe(0);
    // The hook works: the agent's port takes the connection and never answers.
    const hangs = await fetch(`http://127.0.0.1:${before.gatewayPort}/health`, { signal: AbortSignal.timeout(1000) }).then(
      () => false,
      (err: Error) => err.name === 'TimeoutError',
    );
    expect(hangs).toBe(true);

    // One failed check: counted on the row, no restart yet.
    const first = await reconcile();
    expect(first.unhealthy).toContain(hung.agentId);
    expect(first.unhealthy).not.toContain(healthy.agentId);
    expect(first.unhealthyRestarted).toEqual([]);
    expect((await scene.h.core.agents.get(hung.agentId)).healthFailures).toBe(1);
    expect((await scene.h.core.agents.get(healthy.agentId)).healthFailures).toBe(0);
    // Admins see the streak, per agent and in /metrics.
    const admin = await createTestUser(scene.h, 'admin');
    const fleet = (await (await admin.api('/api/admin/agents?limit=200')).json()) as { data: Array<{ id: string; healthFailures: number }> };
    expect(fleet.data.find((a) => a.id === hung.agentId)?.healthFailures).toBe(1);
    expect(fleet.data.find((a) => a.id === healthy.agentId)?.healthFailures).toBe(0);
    expect(await (await admin.api('/metrics')).text()).toMatch(/^hangar_agents_failing_health [1-9]/m);

    // The second in a row reaches the threshold: handed to the lifecycle, the count starts again.
    const second = await reconcile();
    expect(second.unhealthyRestarted).toEqual([hung.agentId]);
    expect(second.unhealthy).not.toContain(healthy.agentId);

    const eventsOf = async (agentId: string) => {
      const res = await admin.api(`/api/admin/fleet/events?type=${UNHEALTHY_RESTARTED_EVENT}&agentId=${agentId}`);
      return ((await res.json()) as { data: Array<{ payload: Record<string, unknown> }> }).data;
    };
    const event = await eventually(async () => (await eventsOf(hung.agentId))[0], 'the agent.unhealthy_restarted event');
    expect(event.payload).toMatchObject({ failures: 2, failure: 'no answer within 500 ms' });
    expect(await (await admin.api('/metrics')).text()).toMatch(/^hangar_agent_unhealthy_restarts_24h [1-9]/m);

    // Restarted by its lifecycle: a new container (a fresh /tmp, so it answers again), running, count zeroed.
    const after = await eventually(async () => {
      const row = await scene.h.core.agents.get(hung.agentId);
      return row.status === 'running' && row.containerId !== before.containerId ? row : null;
    }, 'the unhealthy agent to be restarted', 120_000);
    expect(after.healthFailures).toBe(0);
    expect(await reconcileSignals(hung.agentId)).toBe(1);
    const res = await fetch(`http://127.0.0.1:${after.gatewayPort}/health`, { signal: AbortSignal.timeout(5000) });
    expect(res.status).toBe(200);
    expect((await chat(hung.user, 'back')).text).toBe('echo: back');

    // The healthy agent: same container, never told anything.
    const healthyAfter = await scene.h.core.agents.get(healthy.agentId);
    expect(healthyAfter).toMatchObject({ status: 'running', containerId: healthyBefore.containerId, healthFailures: 0 });
    expect(await reconcileSignals(healthy.agentId)).toBe(0);
    expect(await eventsOf(healthy.agentId)).toEqual([]);

    // A passing round after the restart: nobody failing, nobody restarted.
    const third = await reconcile();
    expect(third).toMatchObject({ unhealthy: [], unhealthyRestarted: [] });

    // Docker's own check agrees once it has run (its first check comes one interval after start).
    await eventually(async () => {
      const info = await scene.h.docker.getContainer(agentContainerName(healthy.agentId)).inspect();
      return info.State.Health?.Status === 'healthy';
    }, 'Docker to report the healthy agent healthy', 90_000);
  });
});
