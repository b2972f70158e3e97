import { describe, expect, it } from 'vitest';
import { countStatuses, isImageAllowed, msUntilHour, planWaves, rolloutWorkflowId } from '../../core/contracts/rollout.contract.ts';
import { imageRepository } from '../../core/services/fleet-settings.service.ts';

const ids = (n: number) => Array.from({ length: n }, (_, i) => `a${i}`);

describe('rollout planning', () => {
  it('cuts rolling waves by percent, at least one agent each, in order', () => {
    const strategy = { kind: 'rollingWave' as const, batchPercent: 30 };
    expect(planWaves(ids(10), strategy).map((w) => w.length)).toEqual([3, 3, 3, 1]);
    expect(planWaves(ids(20), strategy).map((w) => w.length)).toEqual([6, 6, 6, 2]);
    expect(planWaves(ids(3), { kind: 'rollingWave', batchPercent: 1 }).map((w) => w.length)).toEqual([1, 1, 1]);
    expect(planWaves(ids(10), strategy).flat()).toEqual(ids(10));
    expect(planWaves([], strategy)).toEqual([]);
  });

  it('runs immediate and single-agent rollouts as one wave', () => {
    expect(planWaves(ids(7), { kind: 'immediate', batchPercent: 10 })).toEqual([ids(7)]);
    expect(planWaves(ids(1), { kind: 'singleAgent', batchPercent: 10 })).toEqual([ids(1)]);
  });

  it('waits for the next start of the preferred hour, not at all inside it', () => {
    const at = (iso: string) => Date.parse(iso);
    expect(msUntilHour(at('2026-11-24T03:20:00Z'), 3)).toBe(0);
    expect(msUntilHour(at('2026-11-24T02:30:00Z'), 3)).toBe(30 * 60_000);
    expect(msUntilHour(at('2026-11-24T04:00:00Z'), 3)).toBe(23 * 3600_000);
    expect(msUntilHour(at('2026-12-31T23:30:00Z'), 0)).toBe(30 * 60_000);
  });

  it('allows images by prefix only', () => {
    expect(isImageAllowed('hangar/agent:latest', ['hangar/agent'])).toBe(true);
    expect(isImageAllowed('evil/hangar/agent:latest', ['hangar/agent'])).toBe(false);
    expect(isImageAllowed('anything', [''])).toBe(false);
    expect(isImageAllowed('anything', [])).toBe(false);
  });

  it('names rollouts by image and digest', () => {
    expect(rolloutWorkflowId('hangar/agent:latest', 'sha256:abc')).toBe('rollout/hangar/agent:latest@sha256:abc');
    expect(rolloutWorkflowId('x:1', 'sha256:abc', 'agents')).toBe('rollout/x:1@sha256:abc/agents');
    expect(imageRepository('hangar/agent:latest')).toBe('hangar/agent');
    expect(imageRepository('registry:5000/hangar/agent')).toBe('registry:5000/hangar/agent');
    expect(imageRepository('hangar/agent@sha256:abc')).toBe('hangar/agent');
  });

  it('counts every status', () => {
    const c = countStatuses([{ agentId: 'a', status: 'updated' }, { agentId: 'b', status: 'rolled_back' }, { agentId: 'c', status: 'updated' }]);
    expect(c).toMatchObject({ total: 3, updated: 2, rolled_back: 1, pending: 0 });
  });
});
