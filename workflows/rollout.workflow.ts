import { condition, log, patched, proxyActivities, proxyLocalActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { createRolloutActivities } from '../activities/rollout.activities.ts';
import {
  abortRolloutSignal,
  countStatuses,
  fleetSettingsChangedSignal,
  pauseRolloutSignal,
  resumeRolloutSignal,
  rolloutProgressQuery,
  msUntilHour,
  planRollout,
  type AgentProgress,
  type AgentUpdateStatus,
  type ApplyImageResult,
  type RolloutProgress,
  type RolloutWorkflow,
  type RolloutTarget,
} from '../core/contracts/rollout.contract.ts';

type RolloutActivities = ReturnType<typeof createRolloutActivities>;

const control = proxyActivities<RolloutActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
});

/**
 * The rollout's own bookkeeping (its progress row and fleet events): one
 * short database write each, run as local activities in the worker that runs
 * the workflow, so a wave boundary is not a string of round trips through the
 * server (a 20-agent rollout in four waves spent ≈ 2 s of its wall time
 * there). Mail, the fleet's mode (read in the pause loop's timers) and the
 * agents' updates stay activities.
 */
const bookkeeping = proxyLocalActivities<Pick<RolloutActivities, 'saveRolloutProgress' | 'recordRolloutEvent'>>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
});

/**
 * `rollout/<image>@<digest>`: moves the targeted agents to a new digest wave by
 * wave. Each agent is changed by its own lifecycle's applyImage, so a rollout
 * never races a user's restart or the reaper.
 */
export const rollout: RolloutWorkflow = async (input) => {
  const { strategy } = input;
  // Runs begun before the bookkeeping went local replay with activities, as they ran.
  const book = patched('rollout-local-bookkeeping') ? bookkeeping : control;
  const progress: RolloutProgress = {
    id: input.rolloutId,
    workflowId: workflowInfo().workflowId,
    image: input.image,
    toDigest: input.toDigest,
    strategy,
    status: 'pending',
    changelog: input.changelog ?? null,
    waves: [],
    agents: [],
    counts: countStatuses([]),
  };
  let pausedBySignal = false;
  let abortReason: string | null = null;
  let settingsVersion = 0;
  setHandler(rolloutProgressQuery, () => progress);
  setHandler(pauseRolloutSignal, () => void (pausedBySignal = true));
  setHandler(resumeRolloutSignal, () => void (pausedBySignal = false));
  setHandler(abortRolloutSignal, (req) => void (abortReason ??= req?.reason ?? 'aborted by an admin'));
  setHandler(fleetSettingsChangedSignal, () => void settingsVersion++);

  // Long: one call covers snapshot, recreate, health check and maybe a
  // rollback. Heartbeats show the worker is alive; a dead one is retried and
  // the retry re-attaches to the same lifecycle update.
  const updates = proxyActivities<RolloutActivities>({
    startToCloseTimeout: `${strategy.healthTimeoutSeconds * 3 + 1800} seconds`,
    heartbeatTimeout: '15 seconds',
    retry: { initialInterval: '2 seconds', maximumInterval: '30 seconds', maximumAttempts: 50 },
  });

  /** Owners' mail sent at wave boundaries without holding the next wave back. */
  const notices: Promise<unknown>[] = [];

  // Progress writes go one after another, so a slow write never lands after a newer one.
  let saving: Promise<void> = Promise.resolve();
  function save(): Promise<void> {
    progress.counts = countStatuses(progress.agents);
    const snapshot = JSON.parse(JSON.stringify(progress)) as RolloutProgress;
    saving = saving.then(() => book.saveRolloutProgress(snapshot));
    return saving;
  }
  const event = (type: string, payload: Record<string, unknown> = {}, agentId?: string) =>
    book.recordRolloutEvent({ type, rolloutId: input.rolloutId, agentId, payload: { image: input.image, toDigest: input.toDigest, ...payload } });
  const agentEntry = (id: string) => progress.agents.find((a) => a.agentId === id)!;
  function setAgent(id: string, status: AgentUpdateStatus, error?: string): void {
    const a = agentEntry(id);
    a.status = status;
    if (error) a.error = error;
    else delete a.error;
  }

  await control.openRollout({ ...input, workflowId: progress.workflowId, changelog: progress.changelog ?? null });
  try {
    const settings = await control.fleetSettings();
    const { targets, skipped } = await control.rolloutTargets(input);
    progress.agents = [
      ...targets.map((t): AgentProgress => ({ agentId: t.agentId, status: 'pending' })),
      ...skipped.map((s): AgentProgress => ({ agentId: s.agentId, status: 'skipped', error: s.reason })),
    ];

    // Manual mode: the owner is told and the agent left alone; the rest go in waves.
    const { manual, waves: plan } = planRollout({ targets, strategy, trigger: input.trigger, fleetMode: settings.mode, ignoreWindows: input.ignoreWindows, nowMs: Date.now() });
    const byId = new Map(targets.map((t) => [t.agentId, t]));
    progress.waves = plan.map((p) => p.wave);
    progress.status = 'running';
    await save();
    await event('rollout.started', { trigger: input.trigger, targets: targets.length, waves: plan.length, manual: manual.length });

    if (manual.length > 0) {
      const ids = manual.map((t) => t.agentId);
      await control.offerUpdate({ agentIds: ids, toDigest: input.toDigest, rolloutId: input.rolloutId });
      ids.forEach((id) => setAgent(id, 'update_available'));
      await save();
      for (const id of ids) await event('agent.update_available', { changelog: progress.changelog }, id);
      await control.notifyOwners({ rolloutId: input.rolloutId, kind: 'update_available', image: input.image, toDigest: input.toDigest, changelog: progress.changelog ?? null, targets: manual });
    }

    /** Paused by signal or by the fleet's mode: hold here, at a wave boundary. */
    async function holdWhilePaused(): Promise<void> {
      // What the decision below is based on, taken before the reads: a signal
      // that lands while the pause is being recorded must wake the wait, not be
      // missed until the next minute. (Patched: runs begun before this took
      // them after the bookkeeping, and replay as they ran.)
      const early = patched('pause-watch-from-decision');
      for (let i = 0; i < 100_000; i++) {
        let seen = settingsVersion;
        let bySignal = pausedBySignal;
        const mode = (await control.fleetSettings()).mode;
        const paused = pausedBySignal || mode === 'paused';
        if (!paused || abortReason) {
          if (progress.status === 'paused') {
            progress.status = 'running';
            delete progress.reason;
            await save();
            await event('rollout.resumed');
          }
          return;
        }
        if (progress.status !== 'paused') {
          progress.status = 'paused';
          progress.reason = pausedBySignal ? 'paused by an admin' : 'fleet mode is paused';
          await save();
          await event('rollout.paused', { reason: progress.reason });
        }
        if (!early) {
          seen = settingsVersion;
          bySignal = pausedBySignal;
        }
        await condition(() => abortReason !== null || settingsVersion !== seen || pausedBySignal !== bySignal, '1 minute');
      }
    }

    async function updateOne(t: RolloutTarget): Promise<ApplyImageResult> {
      let result: ApplyImageResult | null = null;
      agentEntry(t.agentId).startedAt = new Date().toISOString();
      for (let attempt = 0; attempt <= strategy.maxRetries; attempt++) {
        setAgent(t.agentId, 'updating');
        await save();
        result = await updates.applyImageToAgent({
          target: t,
          request: {
            rolloutId: input.rolloutId,
            attempt,
            image: input.image,
            toDigest: input.toDigest,
            healthTimeoutSec: strategy.healthTimeoutSeconds,
            healthPollMs: input.healthPollMs ?? 5000,
          },
        });
        if (result.outcome !== 'rolled_back') break;
      }
      const r = result!;
      const status: AgentUpdateStatus = r.outcome === 'updated' ? 'updated' : r.outcome === 'skipped' ? 'skipped' : r.outcome;
      setAgent(t.agentId, status, r.error);
      agentEntry(t.agentId).finishedAt = new Date().toISOString();
      await save();
      await event(`agent.${r.outcome === 'failed' ? 'update_failed' : r.outcome}`, { fromDigest: r.fromDigest, error: r.error ?? null, snapshotPath: r.snapshotPath ?? null }, t.agentId);
      if (r.outcome === 'failed' && r.snapshotPath) {
        // A rollback that failed is an emergency: tell the admins now, not at the end.
        await control.alertAdmins({ rolloutId: input.rolloutId, image: input.image, toDigest: input.toDigest, status: 'running', failures: [{ agentId: t.agentId, outcome: r.outcome, error: r.error, snapshotPath: r.snapshotPath }] });
      }
      return r;
    }

    const failuresSoFar = () => progress.agents.filter((a) => a.status === 'rolled_back' || a.status === 'failed').length;
    let fromDigest: string | null = null;

    for (let w = 0; w < plan.length; w++) {
      const { hour, wave } = plan[w];
      if (abortReason) break;
      if (hour !== null) {
        const wait = msUntilHour(Date.now(), hour);
        if (wait > 0) {
          wave.status = 'waiting_window';
          wave.notBefore = new Date(Date.now() + wait).toISOString();
          wave.agentIds.forEach((id) => setAgent(id, 'waiting_window'));
          await save();
          await condition(() => abortReason !== null, wait);
          if (abortReason) break;
        }
      }
      await holdWhilePaused();
      if (abortReason) break;
      wave.status = 'running';
      wave.startedAt = new Date().toISOString();
      await save();
      await event('rollout.wave_started', { wave: wave.index, agents: wave.agentIds.length });
      const results = await Promise.all(wave.agentIds.map((id) => updateOne(byId.get(id)!)));
      fromDigest ??= results.find((r) => r.fromDigest)?.fromDigest ?? null;
      wave.status = 'done';
      wave.finishedAt = new Date().toISOString();
      await save();
      await event('rollout.wave_completed', { wave: wave.index, outcomes: results.map((r) => r.outcome) });
      const updated = wave.agentIds.filter((id) => agentEntry(id).status === 'updated').map((id) => byId.get(id)!);
      if (updated.length > 0) {
        const notice = control.notifyOwners({ rolloutId: input.rolloutId, kind: 'updated', image: input.image, toDigest: input.toDigest, changelog: progress.changelog ?? null, targets: updated });
        // The next wave does not wait for the mail (a round trip through the
        // server, and an SMTP conversation, at every wave boundary); the
        // rollout waits for all of it before it ends. Mail that still fails
        // after its retries is logged, and no longer fails a rollout whose
        // agents were updated. Patched: runs begun before wait as they did.
        if (patched('owner-mail-in-background')) {
          notices.push(notice.catch((err: unknown) => log.warn('owners were not told of their update', { error: String(err) })));
        } else {
          await notice;
        }
      }
      if (strategy.kind === 'rollingWave' && failuresSoFar() >= strategy.failureThreshold) {
        abortReason = `failure threshold reached: ${failuresSoFar()} agent(s) failed or rolled back (threshold ${strategy.failureThreshold})`;
        break;
      }
      // The pause is between rolling waves only (immediate and singleAgent have
      // no such pause, even between preferred-hour groups). Runs that started
      // before this fix keep pausing, as their histories say they did.
      const pauses = strategy.kind === 'rollingWave' || !patched('pause-between-rolling-waves-only');
      if (w < plan.length - 1 && strategy.pauseSeconds > 0 && pauses) {
        await condition(() => abortReason !== null, strategy.pauseSeconds * 1000);
      }
    }

    if (abortReason) {
      for (const a of progress.agents) if (a.status === 'pending' || a.status === 'waiting_window') setAgent(a.agentId, 'skipped', 'rollout aborted');
      for (const w of progress.waves) if (w.status === 'pending' || w.status === 'waiting_window') w.status = 'skipped';
      progress.status = 'aborted';
      progress.reason = abortReason;
    } else {
      progress.status = 'completed';
    }
    await saving;
    await book.saveRolloutProgress({ ...progress, counts: countStatuses(progress.agents) }, fromDigest);
    progress.counts = countStatuses(progress.agents);
    await event(`rollout.${progress.status}`, { reason: progress.reason ?? null, counts: progress.counts });
    await Promise.all(notices);
    const failures = progress.agents.filter((a) => a.status === 'rolled_back' || a.status === 'failed');
    if (failures.length > 0 || progress.status === 'aborted') {
      await control.alertAdmins({
        rolloutId: input.rolloutId,
        image: input.image,
        toDigest: input.toDigest,
        status: progress.status,
        reason: progress.reason,
        failures: failures.map((f) => ({ agentId: f.agentId, outcome: f.status, error: f.error })),
      });
    }
  } catch (err) {
    // Not a business outcome (those are recorded above): record that it broke, and let Temporal show the failure.
    progress.status = 'failed';
    progress.reason = (err as Error).message ?? String(err);
    await saving.catch(() => undefined);
    await book.saveRolloutProgress({ ...progress, counts: countStatuses(progress.agents) });
    await event('rollout.failed', { reason: progress.reason });
    throw err;
  }
  log.info('rollout finished', { status: progress.status, counts: progress.counts });
  return progress;
};
