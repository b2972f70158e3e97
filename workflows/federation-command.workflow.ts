import { CancellationScope, condition, continueAsNew, proxyActivities, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import type { createFederationActivities } from '../activities/federation.activities.ts';
import {
  DEFAULT_FEDERATION_SETTINGS,
  federationStateQuery,
  killRemoteAgentSignal,
  PEER_AGENT_LIMIT,
  PEER_UNREACHABLE,
  type CommandType,
  type FederatedAgentStatus,
  type FederationCommandState,
  type FederationCommandWorkflow,
  type RemoteAgentReport,
} from '../core/contracts/federation.contract.ts';
import { rootFailureType, rootMessage } from '../core/contracts/failures.contract.ts';

type FederationActivities = ReturnType<typeof createFederationActivities>;

const db = proxyActivities<FederationActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
});

/** What the hub records for what the spoke reports. */
function hubStatus(r: RemoteAgentReport): FederatedAgentStatus {
  return r.status === 'updating' ? 'running' : r.status;
}

/**
 * The hub's side of one agent it runs on a peer (`federation/<peer>/<id>`):
 * spawn it (retrying with backoff while the peer is down), follow its status
 * until it runs or fails, keep the status fresh, and kill it on request (an
 * admin's DELETE, or the peer was removed). Every peer call is an activity,
 * so a hub restarted mid-command carries on where it was.
 */
export const federationCommand: FederationCommandWorkflow = async (input) => {
  const settings = { ...DEFAULT_FEDERATION_SETTINGS, ...input.settings };
  const state: FederationCommandState = input.state ?? {
    federatedAgentId: input.federatedAgentId,
    phase: 'spawning',
    report: null,
    killReason: null,
    lastError: null,
  };
  // Spawn and kill: retried with backoff while the peer does not answer, until giveUpAfterSec.
  const peer = proxyActivities<FederationActivities>({
    startToCloseTimeout: '45 seconds',
    scheduleToCloseTimeout: `${settings.giveUpAfterSec} seconds`,
    retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute' },
  });
  // Status: one try; the next round asks again.
  const probe = proxyActivities<FederationActivities>({ startToCloseTimeout: '45 seconds', retry: { maximumAttempts: 1 } });

  setHandler(killRemoteAgentSignal, ({ reason }) => {
    state.killReason ??= String(reason).slice(0, 200);
  });
  setHandler(federationStateQuery, () => ({ ...state }));
  const killed = condition(() => state.killReason !== null);

  const ref = input.federatedAgentId;
  const command = (type: CommandType) => ({ peerId: input.peerId, type, commandId: `${ref}/${type}` });
  let recorded = '';
  async function record(status: FederatedAgentStatus, reason: string | null, report: RemoteAgentReport | null = null): Promise<void> {
    if (report) state.report = report;
    const key = `${status}|${reason}|${report?.remoteAgentId ?? ''}`;
    if (key === recorded) return;
    recorded = key;
    await db.recordFederatedAgent({ id: ref, status, statusReason: reason, report });
  }

  /** Runs `fn` unless a kill arrives first (the call is then cancelled): null when killed. */
  async function unlessKilled<T>(fn: () => Promise<T>): Promise<T | null> {
    if (state.killReason !== null) return null;
    const scope = new CancellationScope();
    const work = scope.run(fn);
    const first = await Promise.race([work.then((v) => ({ v })), killed.then(() => null)]);
    if (first) return first.v;
    scope.cancel();
    await work.catch(() => undefined);
    return null;
  }

  if (state.phase === 'spawning') {
    await record('spawning', null);
    try {
      const r = await unlessKilled(() => peer.sendFederationCommand({ ...command('agent.spawn'), payload: { ref, name: input.name, primaryModel: input.primaryModel } }));
      if (r) {
        state.phase = 'following';
        await record(hubStatus(r), r.statusReason, r);
      } else state.phase = 'killing';
    } catch (err) {
      // Refused (over its agent limit, not allowed) or not answering for giveUpAfterSec: nothing runs there.
      const code = rootFailureType(err) ?? PEER_UNREACHABLE;
      state.lastError = `${code}: ${rootMessage(err)}`;
      state.phase = 'done';
      await record(code === PEER_AGENT_LIMIT ? 'refused' : 'error', state.lastError);
      await db.recordFederationEvent({ type: 'federation.spawn_failed', payload: { federatedAgentId: ref, peerId: input.peerId, code, message: rootMessage(err) } });
      return { ...state };
    }
  }

  if (state.phase === 'following') {
    const deadline = Date.now() + settings.followTimeoutSec * 1000;
    let waitMs = 1000;
    for (let i = 0; i < 1000 && state.phase === 'following'; i++) {
      const r = state.report;
      if (r?.status === 'running' || r?.status === 'error') {
        state.phase = 'watching';
        break;
      }
      if (r?.status === 'removed') {
        await record('removed', 'the peer has no such agent any more', r);
        state.phase = 'done';
        return { ...state };
      }
      if (Date.now() > deadline) {
        await record('error', `not running within ${settings.followTimeoutSec} s (last status: ${r?.status ?? 'unknown'})`);
        state.phase = 'watching';
        break;
      }
      if (await condition(() => state.killReason !== null, waitMs)) break;
      waitMs = Math.min(waitMs * 2, 10_000);
      try {
        // Stopped (e.g. the peer restarted mid-start): ask again to run it; otherwise just ask.
        const type = r?.status === 'stopped' ? 'agent.spawn' : 'agent.status';
        const payload = type === 'agent.spawn' ? { ref, name: input.name, primaryModel: input.primaryModel } : { ref };
        const next = await unlessKilled(() => probe.sendFederationCommand({ ...command(type), payload }));
        if (next) await record(hubStatus(next), next.statusReason, next);
      } catch (err) {
        state.lastError = rootMessage(err);
      }
    }
    if (state.killReason !== null) state.phase = 'killing';
  }

  while (state.phase === 'watching') {
    if (await condition(() => state.killReason !== null, settings.statusIntervalSec * 1000)) {
      state.phase = 'killing';
      break;
    }
    try {
      const r = await probe.sendFederationCommand({ ...command('agent.status'), payload: { ref } });
      state.lastError = null;
      await record(hubStatus(r), r.statusReason, r);
      if (r.status === 'removed') {
        state.phase = 'done';
        return { ...state };
      }
    } catch (err) {
      // The peer is down or refuses for now: the status stays what it was; lastError says why it is stale.
      state.lastError = rootMessage(err);
    }
    if (workflowInfo().continueAsNewSuggested) await continueAsNew<FederationCommandWorkflow>({ ...input, state });
  }

  if (state.phase === 'killing') {
    await record('stopping', state.killReason);
    let removed = false;
    for (let i = 0; i < 60 && !removed; i++) {
      if (i > 0) await sleep(Math.min(2000 * 2 ** i, 30_000));
      try {
        const r = await peer.sendFederationCommand({ ...command('agent.kill'), payload: { ref } });
        // Still stopping there: ask again (the kill is idempotent on the peer).
        removed = r.status === 'removed';
        if (removed) await record('removed', state.killReason, r);
      } catch (err) {
        state.lastError = rootMessage(err);
        break;
      }
    }
    if (!removed) await record('error', `kill not confirmed by the peer: ${state.lastError ?? 'still stopping'}`);
    await db.recordFederationEvent({ type: removed ? 'federation.remote_agent_removed' : 'federation.kill_failed', payload: { federatedAgentId: ref, peerId: input.peerId, reason: state.killReason } });
    state.phase = 'done';
  }
  return { ...state };
};
