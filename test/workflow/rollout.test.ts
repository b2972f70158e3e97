import { randomUUID } from 'node:crypto';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  abortRolloutSignal,
  DEFAULT_STRATEGY,
  fleetSettingsChangedSignal,
  pauseRolloutSignal,
  resumeRolloutSignal,
  ROLLOUT_WORKFLOW,
  rolloutProgressQuery,
  type RolloutWorkflow,
  type RolloutWorkflowInput,
  type Strategy,
} from '../../core/contracts/rollout.contract.ts';
import { DIGEST, RolloutWorld, target } from '../support/rollout-world.fake.ts';
import { keepHistory, signalHandled, startTier, waitFor, type Tier } from '../support/workflow-tier.harness.ts';

// The rollout workflow with its activities as plain functions, on a clock that
// skips: waves and their pauses, preferred hours hours away, pause/resume/abort
// at wave boundaries, retries and the failure threshold, manual-mode offers.
// Each agent's update is one activity here (the lifecycle's applyImage is
// tested in apply-image.test.ts).

const IMAGE = 'hangar-test/agent:stable';
const HOUR = 3_600_000;
const ids = (n: number, prefix = 'a') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe('rollout (time-skipping)', () => {
  const world = new RolloutWorld();
  let t: Tier;

  beforeAll(async () => {
    t = await startTier({ name: 'rollout', control: world.control, host: world.host });
    world.clock = () => t.env.currentTimeMs();
  });
  afterAll(async () => {
    await t?.shutdown();
  });
  beforeEach(() => world.reset());

  function start(strategy: Partial<Strategy>, input: Partial<RolloutWorkflowInput> = {}): Promise<WorkflowHandle<RolloutWorkflow>> {
    const rolloutId = randomUUID();
    return t.client.workflow.start<RolloutWorkflow>(ROLLOUT_WORKFLOW, {
      taskQueue: t.taskQueue,
      workflowId: `rollout/${IMAGE}@${DIGEST}/${rolloutId}`,
      args: [{ rolloutId, image: IMAGE, toDigest: DIGEST, strategy: { ...DEFAULT_STRATEGY, ...strategy }, trigger: 'admin', changelog: 'v2: faster', ...input }],
    });
  }

  const wavesOf = (agentId: string, waves: { agentIds: string[] }[]) => waves.findIndex((w) => w.agentIds.includes(agentId));

  it('plans waves by percent and runs them in order, each after the pause, owners told once per wave', async () => {
    world.targets = ids(10).map((id) => target(id));
    world.skipped = [{ agentId: 'other', reason: 'runs another image' }];
    const handle = await start({ kind: 'rollingWave', batchPercent: 30, pauseSeconds: 600 });
    const r = await handle.result();
    expect(r.status).toBe('completed');
    expect(r.waves.map((w) => w.agentIds)).toEqual([ids(10).slice(0, 3), ids(10).slice(3, 6), ids(10).slice(6, 9), ['a9']]);
    expect(r.counts).toMatchObject({ total: 11, updated: 10, skipped: 1 });
    expect(r.agents.find((a) => a.agentId === 'other')).toMatchObject({ status: 'skipped', error: 'runs another image' });
    // Every agent of a wave is updated before the next wave starts, and 10 minutes pass between waves (virtual time).
    const waveOf = world.applies.map((a) => wavesOf(a.agentId, r.waves));
    expect(waveOf).toEqual([...waveOf].sort());
    for (let i = 1; i < r.waves.length; i++) {
      const gap = Date.parse(r.waves[i].startedAt!) - Date.parse(r.waves[i - 1].finishedAt!);
      expect(gap).toBeGreaterThanOrEqual(600_000);
      expect(gap).toBeLessThan(610_000);
    }
    expect(world.notices).toEqual(r.waves.map((w) => ({ kind: 'updated', agentIds: w.agentIds, changelog: 'v2: faster' })));
    expect(world.eventTypes().filter((e) => e.startsWith('rollout.'))).toEqual([
      'rollout.started',
      ...r.waves.flatMap(() => ['rollout.wave_started', 'rollout.wave_completed']),
      'rollout.completed',
    ]);
    expect(world.lastSave()).toMatchObject({ status: 'completed', counts: { updated: 10 } });
    expect(world.alerts).toEqual([]);
    await keepHistory(handle, 'rollout-waves');
  });

  it("owners' mail does not hold the next wave back; the rollout ends after all of it; mail that fails is logged, not fatal", async () => {
    world.targets = ids(4).map((id) => target(id));
    let deliver!: () => void;
    world.mailGate = new Promise<void>((r) => (deliver = r));
    const handle = await start({ kind: 'rollingWave', batchPercent: 50, pauseSeconds: 0 });
    // Wave 2 starts while wave 1's mail is still on its way.
    await waitFor(() => world.applies.some((a) => a.agentId === 'a2' || a.agentId === 'a3'), 'the second wave while the first wave\'s mail is pending');
    expect(world.notices).toEqual([]);
    // Its progress says completed, but the workflow still waits for the mail.
    await world.untilEvent('rollout.completed');
    expect((await handle.describe()).status.name).toBe('RUNNING');
    deliver();
    const r = await handle.result();
    expect(r.status).toBe('completed');
    expect(world.notices.map((n) => n.agentIds)).toEqual([['a0', 'a1'], ['a2', 'a3']]);
    await keepHistory(handle, 'rollout-mail-in-background');

    world.reset();
    world.targets = ids(2).map((id) => target(id));
    world.mailFails = true;
    const failing = await (await start({ kind: 'immediate' })).result();
    expect(failing.status).toBe('completed');
    expect(failing.counts).toMatchObject({ updated: 2 });
  });

  it('immediate and singleAgent strategies run every target in one wave', async () => {
    world.targets = ids(5).map((id) => target(id));
    for (const kind of ['immediate', 'singleAgent'] as const) {
      const r = await (await start({ kind, batchPercent: 10 })).result();
      expect(r.waves.map((w) => w.agentIds)).toEqual([ids(5)]);
      expect(r.status).toBe('completed');
    }
  });

  it('stops at the failure threshold: the wave finishes, later waves are skipped, admins alerted once', async () => {
    world.targets = ids(8).map((id) => target(id));
    world.outcomes.set('a1', ['rolled_back']);
    world.outcomes.set('a5', ['rolled_back']);
    const handle = await start({ batchPercent: 25, pauseSeconds: 60, failureThreshold: 2 });
    const r = await handle.result();
    expect(r.status).toBe('aborted');
    expect(r.reason).toBe('failure threshold reached: 2 agent(s) failed or rolled back (threshold 2)');
    expect(r.waves.map((w) => w.status)).toEqual(['done', 'done', 'done', 'skipped']);
    // Wave after wave; the two updates of a wave run at once, in either order.
    const applied = world.applies.map((a) => a.agentId);
    expect([0, 2, 4].map((i) => applied.slice(i, i + 2).sort())).toEqual([['a0', 'a1'], ['a2', 'a3'], ['a4', 'a5']]);
    expect(Object.fromEntries(r.agents.map((a) => [a.agentId, a.status]))).toEqual({
      a0: 'updated', a1: 'rolled_back', a2: 'updated', a3: 'updated', a4: 'updated', a5: 'rolled_back', a6: 'skipped', a7: 'skipped',
    });
    expect(r.agents.find((a) => a.agentId === 'a6')?.error).toBe('rollout aborted');
    expect(world.alerts).toHaveLength(1);
    expect(world.alerts[0]).toMatchObject({ status: 'aborted', failures: [{ agentId: 'a1', outcome: 'rolled_back' }, { agentId: 'a5', outcome: 'rolled_back' }] });
    expect(world.eventTypes().at(-1)).toBe('rollout.aborted');
    await keepHistory(handle, 'rollout-failure-threshold');
  });

  it('retries a rolled-back agent up to maxRetries, each attempt its own update; only the last outcome counts', async () => {
    world.targets = [target('flaky'), target('broken'), target('fine')];
    world.outcomes.set('flaky', ['rolled_back', 'rolled_back', 'updated']);
    world.outcomes.set('broken', ['rolled_back']);
    const handle = await start({ kind: 'immediate', maxRetries: 2, failureThreshold: 5 });
    const r = await handle.result();
    expect(r.status).toBe('completed');
    const attempts = (id: string) => world.applies.filter((a) => a.agentId === id).map((a) => a.attempt);
    expect(attempts('flaky')).toEqual([0, 1, 2]);
    expect(attempts('broken')).toEqual([0, 1, 2]);
    expect(attempts('fine')).toEqual([0]);
    expect(Object.fromEntries(r.agents.map((a) => [a.agentId, a.status]))).toEqual({ flaky: 'updated', broken: 'rolled_back', fine: 'updated' });
    expect(world.alerts).toEqual([expect.objectContaining({ status: 'completed', failures: [expect.objectContaining({ agentId: 'broken', outcome: 'rolled_back' })] })]);
    await keepHistory(handle, 'rollout-retries');
  });

  it('a rollback that failed alerts admins at once, not only at the end', async () => {
    world.targets = [target('lost'), target('next')];
    world.outcomes.set('lost', ['failed']);
    const r = await (await start({ batchPercent: 50, pauseSeconds: 3600, failureThreshold: 5 })).result();
    expect(r.status).toBe('completed');
    expect(world.alerts.map((a) => a.status)).toEqual(['running', 'completed']);
    expect(world.alerts[0].failures).toEqual([expect.objectContaining({ agentId: 'lost', snapshotPath: '/snapshots/lost.tar' })]);
    // The first alert went out before the hour-long pause, i.e. before wave 1 started.
    expect(world.alerts[0].at).toBeLessThan(world.applies.find((a) => a.agentId === 'next')!.at - 3_000_000);
    expect(world.events.find((e) => e.type === 'agent.update_failed')?.payload).toMatchObject({ snapshotPath: '/snapshots/lost.tar' });
  });

  it('manual mode offers the update instead of applying it; always-on agents and the owner\'s own "Update now" still apply', async () => {
    world.targets = [target('auto1'), target('manual1', { mode: 'manual' }), target('system1', { mode: 'manual', alwaysOn: true, ownerKind: 'system' })];
    const handle = await start({ kind: 'immediate' });
    const r = await handle.result();
    expect(r.status).toBe('completed');
    expect(world.applies.map((a) => a.agentId).sort()).toEqual(['auto1', 'system1']);
    expect(world.offers).toEqual([{ agentIds: ['manual1'], toDigest: DIGEST }]);
    expect(r.agents.find((a) => a.agentId === 'manual1')?.status).toBe('update_available');
    expect(world.notices).toContainEqual({ kind: 'update_available', agentIds: ['manual1'], changelog: 'v2: faster' });
    expect(world.events.filter((e) => e.type === 'agent.update_available').map((e) => e.agentId)).toEqual(['manual1']);
    await keepHistory(handle, 'rollout-manual-offer');

    // The poller in a fleet set to manual offers to everyone but always-on agents.
    world.reset();
    world.settings.mode = 'manual';
    world.targets = [target('auto1'), target('system1', { alwaysOn: true })];
    const polled = await (await start({ kind: 'immediate' }, { trigger: 'poller' })).result();
    expect(world.offers).toEqual([{ agentIds: ['auto1'], toDigest: DIGEST }]);
    expect(world.applies.map((a) => a.agentId)).toEqual(['system1']);
    expect(polled.counts).toMatchObject({ updated: 1, update_available: 1 });

    // "Update now": the owner answers the offer, so it applies even in manual mode.
    world.reset();
    world.targets = [target('manual1', { mode: 'manual' })];
    const own = await (await start({ kind: 'singleAgent' }, { trigger: 'user', agentIds: ['manual1'] })).result();
    expect(world.offers).toEqual([]);
    expect(own.agents).toEqual([expect.objectContaining({ agentId: 'manual1', status: 'updated' })]);
  });

  it('pause holds at the next wave boundary (looking again each minute); resume continues from there', async () => {
    world.targets = ids(4).map((id) => target(id));
    const wave0 = world.hold('a0');
    const handle = await start({ batchPercent: 50, pauseSeconds: 0 });
    await waitFor(() => world.applies.some((a) => a.agentId === 'a0'), 'wave 0 to start');
    await handle.signal(pauseRolloutSignal);
    await signalHandled(handle, 'pause');
    wave0.open();
    await world.untilEvent('rollout.paused');
    const held = await handle.query(rolloutProgressQuery);
    expect(held).toMatchObject({ status: 'paused', reason: 'paused by an admin' });
    expect(held.waves.map((w) => w.status)).toEqual(['done', 'pending']);
    // Ten minutes of virtual time (ten looks at the fleet's mode): still held, wave 1 untouched.
    await t.env.sleep(10 * 60_000);
    expect(world.applies.map((a) => a.agentId).sort()).toEqual(['a0', 'a1']);
    expect((await handle.query(rolloutProgressQuery)).status).toBe('paused');

    await handle.signal(resumeRolloutSignal);
    const r = await handle.result();
    expect(r.status).toBe('completed');
    expect(world.eventTypes().filter((e) => /paused|resumed/.test(e))).toEqual(['rollout.paused', 'rollout.resumed']);
    const resumedAt = world.events.find((e) => e.type === 'rollout.resumed')!.at;
    expect(Math.min(...world.applies.filter((a) => ['a2', 'a3'].includes(a.agentId)).map((a) => a.at))).toBeGreaterThanOrEqual(resumedAt);
    await keepHistory(handle, 'rollout-pause-resume');
  });

  it('the fleet\'s paused mode holds a rollout; it goes on a minute after the mode changes, at once when told', async () => {
    world.targets = ids(2).map((id) => target(id));
    world.settings.mode = 'paused';
    const quiet = await start({ kind: 'immediate' });
    await world.untilEvent('rollout.paused');
    expect((await quiet.query(rolloutProgressQuery)).reason).toBe('fleet mode is paused');
    world.settings.mode = 'auto';
    expect((await quiet.result()).status).toBe('completed');
    const pausedAt = world.events.find((e) => e.type === 'rollout.paused')!.at;
    const resumedAt = world.events.find((e) => e.type === 'rollout.resumed')!.at;
    // No signal: found on its once-a-minute look.
    expect(resumedAt - pausedAt).toBeGreaterThanOrEqual(60_000);
    expect(resumedAt - pausedAt).toBeLessThan(65_000);

    world.reset();
    world.targets = ids(2).map((id) => target(id));
    world.settings.mode = 'paused';
    const told = await start({ kind: 'immediate' });
    await world.untilEvent('rollout.paused');
    world.settings.mode = 'auto';
    await told.signal(fleetSettingsChangedSignal);
    expect((await told.result()).status).toBe('completed');
    const gap = world.events.find((e) => e.type === 'rollout.resumed')!.at - world.events.find((e) => e.type === 'rollout.paused')!.at;
    expect(gap).toBeLessThan(60_000);
  });

  it('abort cuts a pause between waves short, and works while paused', async () => {
    world.targets = ids(4).map((id) => target(id));
    const handle = await start({ batchPercent: 50, pauseSeconds: 6 * 3600 });
    await world.untilEvent('rollout.wave_completed');
    const waveDone = world.events.find((e) => e.type === 'rollout.wave_completed')!.at;
    await handle.signal(abortRolloutSignal, { reason: 'changed my mind' });
    const r = await handle.result();
    expect(r).toMatchObject({ status: 'aborted', reason: 'changed my mind' });
    expect(r.waves.map((w) => w.status)).toEqual(['done', 'skipped']);
    expect(world.applies.map((a) => a.agentId).sort()).toEqual(['a0', 'a1']);
    expect(world.events.at(-1)!.at - waveDone).toBeLessThan(6 * HOUR);
    expect(world.alerts).toEqual([expect.objectContaining({ status: 'aborted', reason: 'changed my mind', failures: [] })]);
    await keepHistory(handle, 'rollout-abort');

    world.reset();
    world.targets = ids(2).map((id) => target(id));
    const paused = await start({ kind: 'immediate' });
    await paused.signal(pauseRolloutSignal);
    await world.untilEvent('rollout.paused');
    await paused.signal(abortRolloutSignal, {});
    const p = await paused.result();
    expect(p).toMatchObject({ status: 'aborted', reason: 'aborted by an admin' });
    expect(world.applies).toEqual([]);
  });

  it('holds a wave for its workspace\'s preferred hour, hours away, in the order the hours come round', async () => {
    const now = await t.env.currentTimeMs();
    const hourIn = (h: number) => (new Date(now).getUTCHours() + h) % 24;
    world.targets = [
      target('now1'),
      target('late', { preferredHourUtc: hourIn(5) }),
      target('soon', { preferredHourUtc: hourIn(2) }),
      target('now2'),
    ];
    const handle = await start({ kind: 'immediate', pauseSeconds: 0 });
    await waitFor(() => world.saves.some((s) => s.waves[1]?.status === 'waiting_window'), 'wave 1 to wait for its hour');
    const waiting = await handle.query(rolloutProgressQuery);
    expect(waiting.waves.map((w) => [w.agentIds, w.status])).toEqual([[['now1', 'now2'], 'done'], [['soon'], 'waiting_window'], [['late'], 'pending']]);
    expect(waiting.agents.find((a) => a.agentId === 'soon')?.status).toBe('waiting_window');
    expect(new Date(waiting.waves[1].notBefore!).getUTCHours()).toBe(hourIn(2));
    expect(new Date(waiting.waves[1].notBefore!).getUTCMinutes()).toBe(0);

    const r = await handle.result();
    expect(r.status).toBe('completed');
    const at = (id: string) => new Date(world.applies.find((a) => a.agentId === id)!.at);
    expect(at('soon').getUTCHours()).toBe(hourIn(2));
    expect(at('late').getUTCHours()).toBe(hourIn(5));
    expect(at('late').getTime() - now).toBeLessThan(6 * HOUR);
    await keepHistory(handle, 'rollout-preferred-hour');

    // ignoreWindows: one wave, now.
    world.reset();
    world.targets = [target('now1'), target('late', { preferredHourUtc: hourIn(5) })];
    const from = await t.env.currentTimeMs();
    const direct = await (await start({ kind: 'immediate' }, { ignoreWindows: true })).result();
    expect(direct.waves.map((w) => w.agentIds)).toEqual([['now1', 'late']]);
    expect(Math.max(...world.applies.map((a) => a.at)) - from).toBeLessThan(60_000);
  });

  it('pauses only between rolling waves: an immediate rollout goes straight on to its next preferred-hour group', async () => {
    const now = await t.env.currentTimeMs();
    // The current hour is a window open now: two groups, no wait for either.
    world.targets = [target('free'), target('windowed', { preferredHourUtc: new Date(now).getUTCHours() })];
    const r = await (await start({ kind: 'immediate', pauseSeconds: 600 })).result();
    expect(r.waves.map((w) => w.agentIds)).toEqual([['free'], ['windowed']]);
    const at = (id: string) => world.applies.find((a) => a.agentId === id)!.at;
    expect(at('windowed') - at('free')).toBeLessThan(600_000);
  });

  it('abort while a wave waits for its hour skips it', async () => {
    const now = await t.env.currentTimeMs();
    world.targets = [target('night', { preferredHourUtc: (new Date(now).getUTCHours() + 3) % 24 })];
    const handle = await start({ kind: 'immediate' });
    await waitFor(() => world.saves.some((s) => s.waves.some((w) => w.status === 'waiting_window')), 'the wave to wait for its hour');
    await handle.signal(abortRolloutSignal, { reason: 'not tonight' });
    const r = await handle.result();
    expect(r).toMatchObject({ status: 'aborted', reason: 'not tonight' });
    expect(r.agents).toEqual([expect.objectContaining({ agentId: 'night', status: 'skipped' })]);
    expect(world.applies).toEqual([]);
  });

  it('an activity that fails for good fails the workflow, after recording that it broke', async () => {
    world.targets = [target('a0')];
    world.failing = 'rolloutTargets';
    const handle = await start({ kind: 'immediate' });
    const err = await handle.result().catch((e) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(world.lastSave()).toMatchObject({ status: 'failed', reason: 'Activity task failed' });
    expect(world.eventTypes()).toEqual(['rollout.failed']);
  });
});
