import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import pLimit from 'p-limit';
import { disagreements, UNHEALTHY_RESTARTED_EVENT, type AgentHealthCheck, type ContainerObservation } from '../core/contracts/agent.contract.ts';
import type { Core } from '../core/hangar.ts';

// The fleet-wide halves of idleReaper and fleetReconcile, as one activity
// each: the database answers in one query and the lifecycles are told
// concurrently through the Temporal port. The workflows' histories stay a few
// events long however large the fleet (a signal sent from workflow code costs
// its own events and a workflow task each: 10,000 agents would not fit).

/** Lifecycles told at once: enough to hide each signal's round trip, few enough not to flood the frontend. */
const SIGNALS_IN_FLIGHT = 32;

type FleetCore = Pick<Core, 'agents' | 'temporal' | 'rollouts'>;

/** Runs `fn` for each id, SIGNALS_IN_FLIGHT at a time, heartbeating as it goes; the ids `fn` answered false for. */
async function tellEach(ids: string[], fn: (id: string) => Promise<boolean>): Promise<string[]> {
  const limit = pLimit(SIGNALS_IN_FLIGHT);
  const untold: string[] = [];
  let done = 0;
  await Promise.all(ids.map((id) => limit(async () => {
    if (!(await fn(id))) untold.push(id);
    if (++done % 500 === 0) Context.current().heartbeat({ done });
  })));
  return untold;
}

export function createFleetActivities({ core }: { core: FleetCore }) {
  return {
    /**
     * One idle-reaper tick: every running agent idle past its timeout is
     * asked to stop. Only asked: each lifecycle re-checks under its lock, so
     * a chat that lands meanwhile wins. An agent without a lifecycle has
     * nothing running under Hangar's control (the reconciler fixes its row).
     */
    async askIdleAgentsToStop(): Promise<{ asked: number }> {
      const ids = await core.agents.findIdleAgentIds();
      // Many at once: one batch operation, so the tick takes one round trip
      // however many are idle, and the server signals them at its own pace
      // (asked = handed over; the ids without a lifecycle are skipped there).
      // A job id per activity, not per attempt: a retry finds its batch begun.
      const { workflowExecution, activityId } = Context.current().info;
      const jobId = `idle-reaper-${workflowExecution?.runId ?? randomUUID()}-${activityId}`;
      if (ids.length > SIGNALS_IN_FLIGHT && (await core.temporal.agents.reapIfIdleBatch(ids, jobId))) {
        return { asked: ids.length };
      }
      const untold = await tellEach(ids, (id) => core.temporal.agents.reapIfIdle(id));
      return { asked: ids.length - untold.length };
    },

    /**
     * The database side of one host's reconcile: rows that say running whose
     * container is gone or stopped are handed to their lifecycle (rows without
     * one are marked stopped); Hangar-labelled containers whose agent has no
     * row are returned, for the host's worker to remove.
     */
    async reconcileHostRows(req: { hostId: string; containers: ContainerObservation[] }) {
      const rows = await core.agents.listRunningOnHost(req.hostId);
      const tell = disagreements(rows, req.containers);
      const observed = new Map(tell.map((t) => [t.agentId, t.request]));
      const missingLifecycle = await tellEach([...observed.keys()], (id) => core.temporal.agents.reconcile(id, observed.get(id)!));
      await core.agents.markStopped(missingLifecycle, 'lifecycle_missing');
      const labelled = req.containers.filter((c) => c.agentId);
      const known = new Set(await core.agents.existingIds(labelled.map((c) => c.agentId as string)));
      const missing = new Set(missingLifecycle);
      return {
        fixed: tell.map((t) => t.agentId).filter((id) => !missing.has(id)),
        missingLifecycle,
        orphans: labelled.filter((c) => !known.has(c.agentId as string)).map((c) => ({ name: c.name, agentId: c.agentId as string })),
      };
    },

    /**
     * One host's health checks against the database: counts kept on the rows
     * (agents.healthFailures), and each agent past the threshold handed to its
     * own lifecycle (`reconcile`, observed `unhealthy`), which restarts it
     * under its lock, so a user's stop or start queued first wins. One fleet
     * event per agent asked.
     */
    async recordAgentHealth(req: { hostId: string; checks: AgentHealthCheck[] }) {
      const counted = await core.agents.recordHealth(req.hostId, req.checks);
      const byId = new Map(req.checks.map((c) => [c.agentId, c]));
      const untold = new Set(await tellEach(counted.restart.map((r) => r.id), (id) =>
        core.temporal.agents.reconcile(id, { observed: 'unhealthy', failure: byId.get(id)?.detail })));
      const restarted = counted.restart.filter((r) => !untold.has(r.id));
      if (restarted.length > 0) {
        await core.rollouts.recordEvents(restarted.map((r) => ({
          type: UNHEALTHY_RESTARTED_EVENT,
          agentId: r.id,
          payload: {
            hostId: req.hostId,
            failures: r.failures,
            failure: byId.get(r.id)?.detail ?? null,
            dockerHealth: byId.get(r.id)?.dockerHealth ?? null,
          },
        })));
      }
      return { checked: req.checks.length, failing: counted.failing, restarted: restarted.map((r) => r.id) };
    },
  };
}
