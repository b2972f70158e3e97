import type { HangarConfig } from '../config.ts';
import { agentWorkflowId, type LifecycleState, type StartPhase } from '../contracts/agent.contract.ts';
import type { Agent } from '../db.ts';
import { RateLimitedError } from '../errors.ts';
import type { TemporalPort } from './temporal.port.ts';

/** How a caller hears about its place in the start queue. */
export interface StartWatch {
  /** Queued behind `position - 1` others (called again as it moves up). */
  onQueued?(position: number): void;
  /** Its start is under way (a slot is free or was handed over). */
  onStarted?(): void;
}

/**
 * The only way the API changes an agent: updates to its lifecycle workflow,
 * started on first use (update-with-start). Concurrent starts of one agent
 * share one call. At most `maxConcurrentStarts` distinct starts run at once
 * (the engine's protection); more wait in a FIFO queue, per API process,
 * of at most `startQueueMax`, and only a full queue answers 429. A start storm
 * (fifty first chats at once) is served in arrival order instead of bouncing
 * users to retry and race each other.
 */
export function createAgentControl({ temporal, config }: { temporal: TemporalPort; config: Pick<HangarConfig, 'maxConcurrentStarts' | 'startQueueMax'> }) {
  /** Every start queued or running, by agent: a second caller joins it. */
  const starts = new Map<string, { promise: Promise<LifecycleState>; watchers: Set<StartWatch> }>();
  /** Waiting starts in arrival order; `go` hands one a slot. */
  const waiting: Array<{ agentId: string; go: () => void }> = [];
  let running = 0;

  const tellPositions = () => {
    waiting.forEach((w, i) => {
      for (const watch of starts.get(w.agentId)?.watchers ?? []) watch.onQueued?.(i + 1);
    });
  };

  /** A finished start's slot goes straight to the next in line. */
  const releaseSlot = () => {
    const next = waiting.shift();
    if (!next) {
      running--;
      return;
    }
    next.go();
    tellPositions();
  };

  function join(agentId: string, watch?: StartWatch): Promise<LifecycleState> | null {
    const entry = starts.get(agentId);
    if (!entry) return null;
    if (watch) {
      entry.watchers.add(watch);
      const at = waiting.findIndex((w) => w.agentId === agentId);
      if (at >= 0) watch.onQueued?.(at + 1);
      else watch.onStarted?.();
    }
    return entry.promise;
  }

  return {
    workflowUrl(agent: Pick<Agent, 'id'>): string {
      return temporal.workflowUrl(agentWorkflowId(agent.id));
    },

    ensureRunning(agent: Agent, watch?: StartWatch): Promise<LifecycleState> {
      const joined = join(agent.id, watch);
      if (joined) return joined;
      const mustWait = running >= config.maxConcurrentStarts;
      if (mustWait && waiting.length >= config.startQueueMax) {
        throw new RateLimitedError(`${waiting.length} agent starts are already queued; try again in a few seconds`, 5, 'start_queue_full');
      }
      const entry = { promise: null as unknown as Promise<LifecycleState>, watchers: new Set<StartWatch>(watch ? [watch] : []) };
      entry.promise = (async () => {
        if (mustWait) {
          await new Promise<void>((go) => {
            waiting.push({ agentId: agent.id, go });
            watch?.onQueued?.(waiting.length);
          });
        } else {
          running++;
        }
        for (const w of entry.watchers) w.onStarted?.();
        try {
          return await temporal.agents.ensureRunning(agent);
        } finally {
          releaseSlot();
        }
      })().finally(() => starts.delete(agent.id));
      starts.set(agent.id, entry);
      return entry.promise;
    },

    /** Starts running and queued in this process (metrics, tests). */
    startLoad(): { running: number; queued: number } {
      return { running, queued: waiting.length };
    },

    /** Like ensureRunning, reporting the queue position while it waits, then each phase as the workflow reaches it. */
    async ensureRunningWithProgress(agent: Agent, onPhase: (phase: StartPhase, position?: number) => void): Promise<LifecycleState> {
      let done = false;
      let startedWatch: () => void = () => undefined;
      const started = new Promise<void>((r) => (startedWatch = r));
      const result = this.ensureRunning(agent, { onQueued: (position) => onPhase('queued', position), onStarted: startedWatch });
      let last: StartPhase | null = null;
      const watch = (async () => {
        await Promise.race([started, result.catch(() => undefined)]);
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
