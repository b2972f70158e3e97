import {
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
} from '@temporalio/client';
import { temporalWorkflowUrl, type HangarConfig } from '../core/config.ts';
import {
  agentWorkflowId,
  STORAGE_QUOTA_EXCEEDED,
  type LifecycleState,
  type StartPhase,
} from '../core/contracts/agent.contract.ts';
import type { Agent } from '../core/db.ts';
import { ConflictError, RateLimitedError, UnavailableError } from '../core/errors.ts';
import type { Metrics } from './metrics.ts';
import { lifecycleStartOperation } from '../core/lifecycle-start.ts';
import {
  configChangedSignal,
  ensureRunningUpdate,
  restartUpdate,
  stateQuery,
  stopUpdate,
} from '../workflows/agent-lifecycle.workflow.ts';

/**
 * The API's only way to change an agent: updates to its lifecycle workflow,
 * started on first use (update-with-start). Concurrent starts of one agent
 * share one call; too many distinct starts at once get 429, not a pile-up.
 */
export function createAgentControl({ client, config, metrics }: { client: Client; config: HangarConfig; metrics?: Metrics }) {
  const starting = new Map<string, Promise<LifecycleState>>();

  const startOperation = (agent: Agent) => lifecycleStartOperation(agent, config);

  async function withStart(agent: Agent, update: typeof ensureRunningUpdate | typeof restartUpdate, args: unknown[]) {
    try {
      const state = await client.workflow.executeUpdateWithStart(update as typeof ensureRunningUpdate, {
        args: args as [],
        startWorkflowOperation: startOperation(agent),
      });
      metrics?.workflowCalls.inc({ operation: update.name, outcome: 'ok' });
      return state;
    } catch (err) {
      metrics?.workflowCalls.inc({ operation: update.name, outcome: 'failed' });
      throw asStartFailure(err);
    }
  }

  async function existing<T>(agent: Agent, fn: (h: ReturnType<Client['workflow']['getHandle']>) => Promise<T>): Promise<T | null> {
    try {
      return await fn(client.workflow.getHandle(agentWorkflowId(agent.id)));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null;
      throw asStartFailure(err);
    }
  }

  return {
    workflowUrl(agent: Agent): string {
      return temporalWorkflowUrl(config, agentWorkflowId(agent.id));
    },

    ensureRunning(agent: Agent): Promise<LifecycleState> {
      const joined = starting.get(agent.id);
      if (joined) return joined;
      if (starting.size >= config.maxConcurrentStarts) {
        throw new RateLimitedError('Too many agents are starting right now; try again in a few seconds', 5);
      }
      const p = withStart(agent, ensureRunningUpdate, []).finally(() => starting.delete(agent.id));
      starting.set(agent.id, p);
      return p;
    },

    /** Like ensureRunning, reporting each phase as the workflow reaches it. */
    async ensureRunningWithProgress(agent: Agent, onPhase: (phase: StartPhase) => void): Promise<LifecycleState> {
      const result = this.ensureRunning(agent);
      let done = false;
      let last: StartPhase | null = null;
      const watch = (async () => {
        for (let i = 0; !done && i < 2000; i++) {
          const state = await existing(agent, (h) => h.query(stateQuery)).catch(() => null);
          if (!done && state && state.phase !== last) {
            last = state.phase;
            onPhase(state.phase);
          }
          await new Promise((r) => setTimeout(r, 250));
        }
      })();
      try {
        return await result;
      } finally {
        done = true;
        await watch;
      }
    },

    async stop(agent: Agent, reason: string): Promise<LifecycleState | null> {
      return existing(agent, (h) => h.executeUpdate(stopUpdate, { args: [{ reason }] }));
    },

    restart(agent: Agent, reason: string): Promise<LifecycleState> {
      return withStart(agent, restartUpdate, [{ reason }]);
    },

    /** A config change: running agents restart (debounced in the workflow). */
    async configChanged(agent: Agent | null): Promise<'scheduled' | 'not_running'> {
      if (!agent || agent.status !== 'running') return 'not_running';
      const sent = await existing(agent, (h) => h.signal(configChangedSignal).then(() => true));
      return sent ? 'scheduled' : 'not_running';
    },

    state(agent: Agent): Promise<LifecycleState | null> {
      return existing(agent, (h) => h.query(stateQuery));
    },
  };
}

export type AgentControl = ReturnType<typeof createAgentControl>;

function asStartFailure(err: unknown): unknown {
  if (err instanceof WorkflowUpdateFailedError) {
    let cause = err.cause as { message?: string; type?: string; cause?: unknown } | undefined;
    let type: string | undefined;
    for (let i = 0; cause?.cause && i < 10; i++) {
      type = cause.type ?? type;
      cause = cause.cause as typeof cause;
    }
    type = cause?.type ?? type;
    // Not an outage: the agent's state forbids the start until its volume shrinks.
    if (type === STORAGE_QUOTA_EXCEEDED) return new ConflictError(cause?.message ?? err.message, STORAGE_QUOTA_EXCEEDED);
    return new UnavailableError(`The agent could not start: ${cause?.message ?? err.message}`, 'agent_start_failed');
  }
  return err;
}

export { lifecycleStartOperation };
