import { defineQuery, defineSignal } from '@temporalio/workflow';

// The fleet-update contract: types, ids, messages and planning rules. No I/O:
// the rollout workflow imports this file, and so do the API and the activities.

export type FleetMode = 'auto' | 'manual' | 'paused';

/** An update skipped because its volume snapshot would not fit (failure type and the agent's error prefix). */
export const SNAPSHOT_NO_SPACE = 'snapshot_no_space';
/** A restore refused: the snapshot file no longer hashes to what was written. */
export const SNAPSHOT_CORRUPT = 'snapshot_corrupt';
export type StrategyKind = 'rollingWave' | 'singleAgent' | 'immediate';
export type UpdateMode = 'auto' | 'manual';
export type RolloutTrigger = 'admin' | 'poller' | 'user';

export interface Strategy {
  kind: StrategyKind;
  /** rollingWave: share of the targets per wave, 1..100. */
  batchPercent: number;
  /** rollingWave: pause between waves. */
  pauseSeconds: number;
  /** rollingWave: abort once this many agents failed or were rolled back. */
  failureThreshold: number;
  /** Extra attempts at one agent's update after a rollback, before it counts as failed. */
  maxRetries: number;
  healthTimeoutSeconds: number;
}

export interface FleetSettings {
  mode: FleetMode;
  strategy: Strategy;
  /** Auto-mode workspaces without an hour of their own update at this hour (UTC); null = at once. */
  defaultPreferredHourUtc: number | null;
  /** Image name prefixes a rollout may use. */
  imageAllowlist: string[];
  /** Images the poller watches for a new digest. */
  channels: { image: string; pollIntervalSeconds: number }[];
}

export const DEFAULT_STRATEGY: Strategy = {
  kind: 'rollingWave',
  batchPercent: 25,
  pauseSeconds: 60,
  failureThreshold: 1,
  maxRetries: 0,
  healthTimeoutSeconds: 120,
};

export type RolloutStatus = 'pending' | 'running' | 'paused' | 'completed' | 'aborted' | 'failed';
export type AgentUpdateStatus =
  | 'pending'
  | 'waiting_window'
  | 'updating'
  | 'updated'
  | 'rolled_back'
  | 'skipped'
  | 'failed'
  | 'update_available';

export interface RolloutTarget {
  agentId: string;
  dockerHostId: string;
  ownerKind: 'user' | 'workspace' | 'system' | 'federated';
  ownerId: string;
  /** The workspace whose update config applies (a user's personal one for user agents). */
  workspaceId: string | null;
  mode: UpdateMode;
  preferredHourUtc: number | null;
  alwaysOn: boolean;
}

export interface RolloutInput {
  rolloutId: string;
  image: string;
  toDigest: string;
  strategy: Strategy;
  trigger: RolloutTrigger;
  agentIds?: string[];
  ignoreWindows?: boolean;
  startedById?: string | null;
}

export interface WaveProgress {
  index: number;
  agentIds: string[];
  status: 'pending' | 'waiting_window' | 'running' | 'done' | 'skipped';
  /** For a wave held until a workspace's preferred hour. */
  notBefore?: string;
  startedAt?: string;
  finishedAt?: string;
}

export interface AgentProgress {
  agentId: string;
  status: AgentUpdateStatus;
  error?: string;
  /** When this agent's update began and ended (its share of the wave's critical path). */
  startedAt?: string;
  finishedAt?: string;
}

export type RolloutCounts = Record<AgentUpdateStatus | 'total', number>;

export interface RolloutProgress {
  id: string;
  workflowId: string;
  image: string;
  toDigest: string;
  strategy: Strategy;
  status: RolloutStatus;
  /** Why it paused, aborted or failed. */
  reason?: string;
  changelog?: string | null;
  waves: WaveProgress[];
  agents: AgentProgress[];
  counts: RolloutCounts;
}

export interface ApplyImageRequest {
  rolloutId: string;
  /** 0, then 1.. for the strategy's retries: each attempt is its own update. */
  attempt: number;
  image: string;
  toDigest: string;
  healthTimeoutSec: number;
  healthPollMs: number;
}

export interface ApplyImageResult {
  outcome: 'updated' | 'rolled_back' | 'failed' | 'skipped';
  fromDigest: string | null;
  toDigest: string;
  error?: string;
  /** Kept when the rollback itself failed, so an admin can restore by hand. */
  snapshotPath?: string;
}

/** One rollout per image digest (and per agent set, for targeted ones). */
export function rolloutWorkflowId(image: string, digest: string, scope?: string): string {
  return `rollout/${image}@${digest}${scope ? `/${scope}` : ''}`;
}

export const imagePollerScheduleId = (image: string) => `image-poller/${image}`;

export function isImageAllowed(image: string, allowlist: string[]): boolean {
  return allowlist.some((prefix) => prefix.length > 0 && image.startsWith(prefix));
}

/** Waves for a strategy: rollingWave cuts by percent (at least one agent each), the others run all at once. */
export function planWaves(agentIds: string[], strategy: Pick<Strategy, 'kind' | 'batchPercent'>): string[][] {
  if (agentIds.length === 0) return [];
  if (strategy.kind !== 'rollingWave') return [agentIds.slice()];
  const size = Math.max(1, Math.ceil((agentIds.length * strategy.batchPercent) / 100));
  const waves: string[][] = [];
  for (let i = 0; i < agentIds.length; i += size) waves.push(agentIds.slice(i, i + size));
  return waves;
}

/** Milliseconds from `nowMs` until the next start of `hourUtc` (0 when we are inside that hour). */
export function msUntilHour(nowMs: number, hourUtc: number): number {
  const now = new Date(nowMs);
  if (now.getUTCHours() === hourUtc) return 0;
  const next = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate(), hourUtc);
  return next > nowMs ? next - nowMs : next + 86_400_000 - nowMs;
}

export interface PlannedWave {
  /** The preferred hour (UTC) this wave waits for; null = as soon as its turn comes. */
  hour: number | null;
  wave: WaveProgress;
}

/**
 * Who is offered the update (manual mode) and the waves for everyone else,
 * in the order they run: agents with no window first, then each preferred hour
 * in the order it next comes round from `nowMs`. A user's own "Update now"
 * (singleAgent, or trigger user) is the answer to an offer, so it applies.
 */
export function planRollout(req: {
  targets: RolloutTarget[];
  strategy: Pick<Strategy, 'kind' | 'batchPercent'>;
  trigger: RolloutTrigger;
  fleetMode: FleetMode;
  ignoreWindows?: boolean;
  nowMs: number;
}): { manual: RolloutTarget[]; waves: PlannedWave[] } {
  const explicit = req.strategy.kind === 'singleAgent' || req.trigger === 'user';
  const allManual = req.trigger === 'poller' && req.fleetMode === 'manual';
  const manual = explicit ? [] : req.targets.filter((t) => !t.alwaysOn && (allManual || t.mode === 'manual'));
  const auto = req.targets.filter((t) => !manual.includes(t));
  const now = auto.filter((t) => req.ignoreWindows || t.preferredHourUtc === null);
  const later = auto.filter((t) => !now.includes(t));
  const hours = [...new Set(later.map((t) => t.preferredHourUtc!))].sort((a, b) => msUntilHour(req.nowMs, a) - msUntilHour(req.nowMs, b));
  const groups = [
    { hour: null, ids: now.map((t) => t.agentId) },
    ...hours.map((h) => ({ hour: h, ids: later.filter((t) => t.preferredHourUtc === h).map((t) => t.agentId) })),
  ];
  const waves: PlannedWave[] = [];
  for (const g of groups) {
    for (const ids of planWaves(g.ids, req.strategy)) waves.push({ hour: g.hour, wave: { index: waves.length, agentIds: ids, status: 'pending' } });
  }
  return { manual, waves };
}

export function countStatuses(agents: AgentProgress[]): RolloutCounts {
  const counts: RolloutCounts = {
    total: agents.length,
    pending: 0,
    waiting_window: 0,
    updating: 0,
    updated: 0,
    rolled_back: 0,
    skipped: 0,
    failed: 0,
    update_available: 0,
  };
  for (const a of agents) counts[a.status]++;
  return counts;
}

export const ROLLOUT_WORKFLOW = 'rollout';
export const IMAGE_POLLER_WORKFLOW = 'imagePoller';
export const DESCRIBE_IMAGE_WORKFLOW = 'describeImage';

export interface RolloutWorkflowInput extends RolloutInput {
  changelog?: string | null;
  /** How often an updated agent's health is polled; the worker's config decides, the starter passes it. */
  healthPollMs?: number;
}

/** What an image (as a Docker host sees it) is now. */
export interface ImageDescription {
  image: string;
  /** The local image id (sha256:...): what containers are pinned to. */
  digest: string;
  version: string | null;
  changelog: string | null;
}

export type PollResult = { started: string | null; reason: string };

export type RolloutWorkflow = (input: RolloutWorkflowInput) => Promise<RolloutProgress>;
export type ImagePollerWorkflow = (input: { image: string; healthPollMs?: number }) => Promise<PollResult>;
export type DescribeImageWorkflow = (input: { image: string }) => Promise<ImageDescription>;

export const pauseRolloutSignal = defineSignal('pause');
export const resumeRolloutSignal = defineSignal('resume');
export const abortRolloutSignal = defineSignal<[{ reason?: string }]>('abort');
/** Fleet settings changed (e.g. mode paused → auto): look again now rather than at the next poll. */
export const fleetSettingsChangedSignal = defineSignal('fleetSettingsChanged');
export const rolloutProgressQuery = defineQuery<RolloutProgress>('progress');
