import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import {
  DEFAULT_STRATEGY,
  type ApplyImageResult,
  type FleetSettings,
  type RolloutProgress,
  type RolloutTarget,
} from '../../core/contracts/rollout.contract.ts';
import type { ControlActivities, HostActivities } from './workflow-tier.harness.ts';
import { waitFor } from './workflow-tier.harness.ts';

// The control side of fleet updates as plain functions: fleet settings and
// targets a test sets, and a log of everything the rollout and poller
// workflows asked for, stamped with the test server's (virtual) clock.

export const DIGEST = `sha256:${'c'.repeat(64)}`;

function virtualNow(): number {
  return Context.current().info.currentAttemptScheduledTimestampMs;
}

export type Outcome = ApplyImageResult['outcome'];

export function target(agentId: string, over: Partial<RolloutTarget> = {}): RolloutTarget {
  return { agentId, dockerHostId: 'h1', ownerKind: 'user', ownerId: `owner-${agentId}`, workspaceId: null, mode: 'auto', preferredHourUtc: null, alwaysOn: false, ...over };
}

export class RolloutWorld {
  settings: FleetSettings = { mode: 'auto', strategy: DEFAULT_STRATEGY, defaultPreferredHourUtc: null, imageAllowlist: ['hangar-test/'], channels: [] };
  targets: RolloutTarget[] = [];
  skipped: { agentId: string; reason: string }[] = [];
  /** Outcome per attempt (last one repeats); default "updated". */
  outcomes = new Map<string, Outcome[]>();
  /** What the image looks like on the Docker host (poller). */
  image = { digest: DIGEST, changelog: 'v2: faster' as string | null };
  /** An activity that fails for good, to see the workflow fail. */
  failing: string | null = null;
  hosts = ['h1'];

  applies: { agentId: string; attempt: number; at: number }[] = [];
  saves: RolloutProgress[] = [];
  events: { type: string; agentId?: string; payload?: Record<string, unknown>; at: number }[] = [];
  offers: { agentIds: string[]; toDigest: string }[] = [];
  notices: { kind: string; agentIds: string[]; changelog: string | null }[] = [];
  alerts: { status: string; reason?: string; failures: { agentId: string; outcome: string; snapshotPath?: string }[]; at: number }[] = [];
  opened: string[] = [];
  /** Owners' mail waits for this before it is "sent" (null: at once). */
  mailGate: Promise<void> | null = null;
  /** Owners' mail fails for good (the SMTP server refuses it). */
  mailFails = false;
  private holds = new Map<string, { opened: Promise<void>; open: () => void }>();
  /**
   * The test server's clock, for local activities (the rollout's bookkeeping):
   * their schedule time is the worker's wall clock, not the skipped-ahead one.
   */
  clock: (() => Promise<number>) | null = null;

  private async now(): Promise<number> {
    return Context.current().info.isLocal && this.clock ? this.clock() : virtualNow();
  }

  /** Back to an empty fleet in auto mode: tests in one file share the workers, not the data. */
  reset(): void {
    const fresh = new RolloutWorld();
    for (const k of ['settings', 'targets', 'skipped', 'outcomes', 'image', 'failing', 'hosts', 'applies', 'saves', 'events', 'offers', 'notices', 'alerts', 'opened', 'mailGate', 'mailFails'] as const) {
      (this as Record<string, unknown>)[k] = fresh[k];
    }
    this.holds.clear();
  }

  /** The next update of this agent waits (after being logged) until `open()`. */
  hold(agentId: string): { open: () => void } {
    let open!: () => void;
    const opened = new Promise<void>((r) => (open = r));
    this.holds.set(agentId, { opened, open });
    return { open };
  }

  eventTypes(): string[] {
    return this.events.map((e) => e.type);
  }

  lastSave(): RolloutProgress | undefined {
    return this.saves.at(-1);
  }

  untilEvent(type: string, what = `event ${type}`): Promise<{ type: string; at: number }> {
    return waitFor(() => this.events.find((e) => e.type === type), what);
  }

  private fail(name: string): void {
    if (this.failing === name) throw ApplicationFailure.nonRetryable(`${name} broke`, 'test_failure');
  }

  readonly control: Partial<ControlActivities> = {
    fleetSettings: async () => structuredClone(this.settings),
    openRollout: async (input) => void this.opened.push(input.rolloutId),
    rolloutTargets: async () => {
      this.fail('rolloutTargets');
      return { targets: this.targets, skipped: this.skipped };
    },
    saveRolloutProgress: async (p) => void this.saves.push(p),
    recordRolloutEvent: async (e) => {
      const at = await this.now();
      this.events.push({ type: e.type, agentId: e.agentId, payload: e.payload, at });
    },
    offerUpdate: async (req) => void this.offers.push({ agentIds: req.agentIds, toDigest: req.toDigest }),
    applyImageToAgent: async ({ target: t, request }) => {
      this.applies.push({ agentId: t.agentId, attempt: request.attempt, at: virtualNow() });
      const h = this.holds.get(t.agentId);
      if (h) {
        this.holds.delete(t.agentId);
        await h.opened;
      }
      const plan = this.outcomes.get(t.agentId) ?? ['updated'];
      const outcome = plan[Math.min(request.attempt, plan.length - 1)];
      return {
        outcome,
        fromDigest: `sha256:${'a'.repeat(64)}`,
        toDigest: request.toDigest,
        ...(outcome === 'updated' ? {} : { error: `${outcome} on attempt ${request.attempt}` }),
        ...(outcome === 'failed' ? { snapshotPath: `/snapshots/${t.agentId}.tar` } : {}),
      };
    },
    notifyOwners: async (req) => {
      if (this.mailGate) await this.mailGate;
      if (this.mailFails) throw ApplicationFailure.nonRetryable('550 mailbox unavailable', 'test_failure');
      this.notices.push({ kind: req.kind, agentIds: req.targets.map((x) => x.agentId), changelog: req.changelog });
      return { sent: req.targets.length, skipped: 0 };
    },
    alertAdmins: async (req) => {
      this.alerts.push({ status: req.status, reason: req.reason, failures: req.failures, at: virtualNow() });
      return { sent: 1, skipped: 0 };
    },
    listDockerHosts: async () => this.hosts,
  };

  readonly host: Partial<HostActivities> = {
    describeImage: async (image) => ({ image, digest: this.image.digest, version: null, changelog: this.image.changelog }),
  };
}
