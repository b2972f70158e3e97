import { describe, expect, it } from 'vitest';
import { countStatuses, isImageAllowed, msUntilHour, planRollout, planWaves, rolloutWorkflowId, type RolloutTarget } from '../../core/contracts/rollout.contract.ts';
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

  describe('planRollout: manual offers and preferred-hour waves', () => {
    const target = (agentId: string, over: Partial<RolloutTarget> = {}): RolloutTarget => ({
      agentId, dockerHostId: 'local', ownerKind: 'user', ownerId: `o-${agentId}`, workspaceId: `w-${agentId}`, mode: 'auto', preferredHourUtc: null, alwaysOn: false, ...over,
    });
    const at0230 = Date.parse('2026-11-24T02:30:00Z');
    const rolling = { kind: 'rollingWave' as const, batchPercent: 50 };

    it('runs agents with no window first, then each hour in the order it next comes round', () => {
      const targets = [target('n1'), target('h1a', { preferredHourUtc: 1 }), target('n2'), target('h4', { preferredHourUtc: 4 }), target('h1b', { preferredHourUtc: 1 }), target('h3', { preferredHourUtc: 3 })];
      const { manual, waves } = planRollout({ targets, strategy: rolling, trigger: 'admin', fleetMode: 'auto', nowMs: at0230 });
      expect(manual).toEqual([]);
      // At 02:30 the next 03:00 comes before 04:00, and 01:00 is tomorrow.
      expect(waves.map((w) => [w.hour, w.wave.agentIds])).toEqual([
        [null, ['n1']], [null, ['n2']], [3, ['h3']], [4, ['h4']], [1, ['h1a']], [1, ['h1b']],
      ]);
      expect(waves.map((w) => w.wave.index)).toEqual([0, 1, 2, 3, 4, 5]);
    });

    it('inside a preferred hour, that hour comes first among the windows', () => {
      const targets = [target('h2', { preferredHourUtc: 2 }), target('h3', { preferredHourUtc: 3 })];
      const { waves } = planRollout({ targets, strategy: { kind: 'immediate', batchPercent: 100 }, trigger: 'admin', fleetMode: 'auto', nowMs: at0230 });
      expect(waves.map((w) => w.hour)).toEqual([2, 3]);
    });

    it('ignoreWindows puts every auto agent in the first group', () => {
      const targets = [target('h3', { preferredHourUtc: 3 }), target('n')];
      const { waves } = planRollout({ targets, strategy: { kind: 'immediate', batchPercent: 100 }, trigger: 'admin', fleetMode: 'auto', ignoreWindows: true, nowMs: at0230 });
      expect(waves).toHaveLength(1);
      expect(waves[0]).toMatchObject({ hour: null, wave: { agentIds: ['h3', 'n'] } });
    });

    it('offers manual workspaces, and everyone but always-on agents when the fleet is manual and the poller found it', () => {
      const targets = [target('m', { mode: 'manual' }), target('a'), target('sys', { alwaysOn: true, ownerKind: 'system' })];
      expect(planRollout({ targets, strategy: rolling, trigger: 'admin', fleetMode: 'auto', nowMs: at0230 }).manual.map((t) => t.agentId)).toEqual(['m']);
      const poller = planRollout({ targets, strategy: rolling, trigger: 'poller', fleetMode: 'manual', nowMs: at0230 });
      expect(poller.manual.map((t) => t.agentId)).toEqual(['m', 'a']);
      expect(poller.waves.flatMap((w) => w.wave.agentIds)).toEqual(['sys']);
    });

    it("a user's own Update now applies even in manual mode", () => {
      const targets = [target('m', { mode: 'manual', preferredHourUtc: 5 })];
      const { manual, waves } = planRollout({ targets, strategy: { kind: 'singleAgent', batchPercent: 100 }, trigger: 'user', fleetMode: 'manual', ignoreWindows: true, nowMs: at0230 });
      expect(manual).toEqual([]);
      expect(waves.map((w) => w.wave.agentIds)).toEqual([['m']]);
    });
  });
});
