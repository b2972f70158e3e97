import { describe, expect, it } from 'vitest';
import type { LifecycleState } from '../../core/contracts/agent.contract.ts';
import { createAgentControl } from '../../core/control/agent-control.ts';
import type { TemporalPort } from '../../core/control/temporal.port.ts';
import type { Agent } from '../../core/db.ts';

// The API's start queue: at most N starts run, the rest wait first come first
// served with their position told, and only a full queue refuses.
function fakePort() {
  const pending = new Map<string, (s: LifecycleState) => void>();
  const begun: string[] = [];
  let peak = 0;
  const port = {
    workflowUrl: () => '',
    agents: {
      ensureRunning(agent: { id: string }) {
        begun.push(agent.id);
        peak = Math.max(peak, pending.size + 1);
        return new Promise<LifecycleState>((resolve) => pending.set(agent.id, resolve));
      },
      state: async () => null,
    },
  } as unknown as TemporalPort;
  const finish = async (id: string) => {
    const resolve = pending.get(id);
    if (!resolve) throw new Error(`${id} is not running`);
    pending.delete(id);
    resolve({ agentId: id, status: 'running', phase: 'ready' } as LifecycleState);
    // Let the slot change hands.
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };
  return { port, begun, finish, peak: () => peak };
}

const agent = (id: string) => ({ id }) as Agent;

describe('start queue', () => {
  it('runs at most the cap, then serves the waiting in arrival order with their positions', async () => {
    const fake = fakePort();
    const control = createAgentControl({ temporal: fake.port, config: { maxConcurrentStarts: 2, startQueueMax: 10 } });
    const positions = new Map<string, number[]>();
    const watch = (id: string) => ({ onQueued: (p: number) => positions.set(id, [...(positions.get(id) ?? []), p]) });
    const done = ['a', 'b', 'c', 'd', 'e'].map((id) => control.ensureRunning(agent(id), watch(id)));
    expect(fake.begun).toEqual(['a', 'b']);
    expect(control.startLoad()).toEqual({ running: 2, queued: 3 });
    // A second caller for a queued agent joins it, and learns where it stands.
    const joined: number[] = [];
    const again = control.ensureRunning(agent('d'), { onQueued: (p) => joined.push(p) });
    expect(joined).toEqual([2]);

    await fake.finish('b');
    expect(fake.begun).toEqual(['a', 'b', 'c']);
    await fake.finish('a');
    expect(fake.begun).toEqual(['a', 'b', 'c', 'd']);
    await fake.finish('c');
    await fake.finish('d');
    await fake.finish('e');
    await Promise.all([...done, again]);
    expect(fake.begun).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(fake.peak()).toBe(2);
    expect(positions.get('c')).toEqual([1]);
    expect(positions.get('d')).toEqual([2, 1]);
    expect(positions.get('e')).toEqual([3, 2, 1]);
    expect(positions.get('a')).toBeUndefined();
    expect(control.startLoad()).toEqual({ running: 0, queued: 0 });
  });

  it('refuses with 429 start_queue_full only when the queue is full, and a failed start frees its slot', async () => {
    const fake = fakePort();
    const control = createAgentControl({ temporal: fake.port, config: { maxConcurrentStarts: 1, startQueueMax: 1 } });
    const a = control.ensureRunning(agent('a'));
    const b = control.ensureRunning(agent('b'));
    expect(() => control.ensureRunning(agent('c'))).toThrow(expect.objectContaining({ status: 429, code: 'start_queue_full' }));
    // Joining a start already queued is never refused.
    expect(control.ensureRunning(agent('b'))).toBe(b);
    await fake.finish('a');
    await fake.finish('b');
    await Promise.all([a, b]);

    const failing = fakePort();
    (failing.port.agents as { ensureRunning: unknown }).ensureRunning = async () => {
      throw new Error('engine said no');
    };
    const c2 = createAgentControl({ temporal: failing.port, config: { maxConcurrentStarts: 1, startQueueMax: 0 } });
    await expect(c2.ensureRunning(agent('x'))).rejects.toThrow('engine said no');
    expect(c2.startLoad()).toEqual({ running: 0, queued: 0 });
  });
});
