import type { HangarConfig } from '../config.ts';
import { agentWorkflowId, type LifecycleState, type StartPhase } from '../contracts/agent.contract.ts';
import type { Agent } from '../db.ts';
import { RateLimitedError } from '../errors.ts';
import type { TemporalPort } from './temporal.port.ts';

/**
 * The only way the API changes an agent: updates to its lifecycle workflow,
 * started on first use (update-with-start). Concurrent starts of one agent
 * share one call; too many distinct starts at once get 429, not a pile-up.
 */
export function createAgentControl({ temporal, config }: { temporal: TemporalPort; config: Pick<HangarConfig, 'maxConcurrentStarts'> }) {
  const starting = new Map<string, Promise<LifecycleState>>();

  return {
    workflowUrl(agent: Pick<Agent, 'id'>): string {
      return temporal.workflowUrl(agentWorkflowId(agent.id));
    },

    ensureRunning(agent: Agent): Promise<LifecycleState> {
      const joined = starting.get(agent.id);
      if (joined) return joined;
      if (starting.size >= config.maxConcurrentStarts) {
        throw new RateLimitedError('Too many agents are starting right now; try again in a few seconds', 5);
      }
      const p = temporal.agents.ensureRunning(agent).finally(() => starting.delete(agent.id));
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
          // Progress is best effort: a query that fails now is asked again in 250 ms.
          const state = await temporal.agents.state(agent.id).catch(() => null);
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

    /** null: the agent has no lifecycle, so nothing was running. */
    stop(agent: Pick<Agent, 'id'>, reason: string): Promise<LifecycleState | null> {
      return temporal.agents.stop(agent.id, reason);
    },

    restart(agent: Agent, reason: string): Promise<LifecycleState> {
      return temporal.agents.restart(agent, reason);
    },

    /**
     * A config change: a running agent restarts (debounced in the workflow).
     * One that is starting or updating is told too: its lifecycle restarts it
     * once that finishes, since it may have read its config already.
     */
    async configChanged(agent: Agent | null): Promise<'scheduled' | 'not_running'> {
      if (!agent || agent.status === 'stopped' || agent.status === 'error') return 'not_running';
      return (await temporal.agents.configChanged(agent.id)) ? 'scheduled' : 'not_running';
    },

    state(agent: Pick<Agent, 'id'>): Promise<LifecycleState | null> {
      return temporal.agents.state(agent.id);
    },

    /**
     * Before an agent's row goes: stopped through its lifecycle (so no stop
     * races a start), then that lifecycle ends. The stopped container is left
     * to the reconciler, which removes containers whose agent is gone.
     */
    async retire(agent: Pick<Agent, 'id'>, reason: string): Promise<void> {
      await temporal.agents.stop(agent.id, reason);
      await temporal.agents.terminate(agent.id, reason);
    },
  };
}

export type AgentControl = ReturnType<typeof createAgentControl>;
