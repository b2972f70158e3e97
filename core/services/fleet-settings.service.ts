import { Type, type Static } from 'typebox';
import { Value } from 'typebox/value';
import type { HangarConfig } from '../config.ts';
import { DEFAULT_STRATEGY, isImageAllowed, type FleetSettings, type UpdateMode } from '../contracts/rollout.contract.ts';
import { asSystem, type Db, type Tx } from '../db.ts';
import { ValidationError } from '../errors.ts';
import type { SettingsService } from './settings.service.ts';

// Fleet-wide update settings (one system setting) and each workspace's own
// update mode and hour. The API's schemas are these schemas.

/** An image reference as rollouts and channels name it. */
export const ImageRef = Type.String({ minLength: 1, maxLength: 255, pattern: '^[a-z0-9][a-z0-9._/:@-]*$' });

export const StrategySchema = Type.Object(
  {
    kind: Type.Union([Type.Literal('rollingWave'), Type.Literal('singleAgent'), Type.Literal('immediate')]),
    batchPercent: Type.Integer({ minimum: 1, maximum: 100 }),
    pauseSeconds: Type.Integer({ minimum: 0, maximum: 86_400 }),
    failureThreshold: Type.Integer({ minimum: 1, maximum: 10_000 }),
    maxRetries: Type.Integer({ minimum: 0, maximum: 5 }),
    healthTimeoutSeconds: Type.Integer({ minimum: 5, maximum: 3600 }),
  },
  { additionalProperties: false },
);

export const FleetSettingsSchema = Type.Object(
  {
    mode: Type.Union([Type.Literal('auto'), Type.Literal('manual'), Type.Literal('paused')]),
    strategy: StrategySchema,
    defaultPreferredHourUtc: Type.Union([Type.Integer({ minimum: 0, maximum: 23 }), Type.Null()]),
    imageAllowlist: Type.Array(ImageRef, { maxItems: 50 }),
    channels: Type.Array(
      Type.Object(
        { image: ImageRef, pollIntervalSeconds: Type.Integer({ minimum: 10, maximum: 86_400 }) },
        { additionalProperties: false },
      ),
      { maxItems: 20 },
    ),
  },
  { additionalProperties: false },
);

export const UpdateConfigSchema = Type.Object(
  {
    mode: Type.Union([Type.Literal('auto'), Type.Literal('manual')]),
    preferredHourUtc: Type.Union([Type.Integer({ minimum: 0, maximum: 23 }), Type.Null()]),
  },
  { additionalProperties: false },
);
export type UpdateConfig = Static<typeof UpdateConfigSchema>;

/** What a workspace's update config answers: its own choice, an instance admin's override, and what applies. */
export const UpdateConfigViewSchema = Type.Object({
  mode: Type.Union([Type.Literal('auto'), Type.Literal('manual')]),
  preferredHourUtc: Type.Union([Type.Integer({ minimum: 0, maximum: 23 }), Type.Null()]),
  modeOverride: Type.Union([Type.Literal('auto'), Type.Literal('manual'), Type.Null()]),
  effectiveMode: Type.Union([Type.Literal('auto'), Type.Literal('manual')]),
});
export type UpdateConfigView = Static<typeof UpdateConfigViewSchema>;

/** The repository part of an image reference: `hangar/agent:latest` → `hangar/agent`. */
export function imageRepository(image: string): string {
  const at = image.indexOf('@');
  const noDigest = at >= 0 ? image.slice(0, at) : image;
  const colon = noDigest.lastIndexOf(':');
  return colon > noDigest.lastIndexOf('/') ? noDigest.slice(0, colon) : noDigest;
}

export function createFleetSettingsService({ db, config, settings }: { db: Db; config: HangarConfig; settings: SettingsService }) {
  const defaults = (): FleetSettings => ({
    mode: 'auto',
    strategy: { ...DEFAULT_STRATEGY, healthTimeoutSeconds: config.agentStartTimeoutSec },
    defaultPreferredHourUtc: null,
    imageAllowlist: [imageRepository(config.agentImage)],
    channels: [{ image: config.agentImage, pollIntervalSeconds: 300 }],
  });

  async function personalWorkspace(tx: Tx, userId: string): Promise<string> {
    const found = await tx.workspace.findUnique({ where: { personalOwnerId: userId }, select: { id: true } });
    if (found) return found.id;
    const slug = `u-${userId.replace(/-/g, '').slice(0, 20)}`;
    const ws = await tx.workspace.upsert({
      where: { personalOwnerId: userId },
      create: { slug, name: 'Personal', personalOwnerId: userId, members: { create: { userId, role: 'owner' } } },
      update: {},
      select: { id: true },
    });
    return ws.id;
  }

  return {
    defaults,

    async get(): Promise<FleetSettings> {
      const stored = await settings.fleetJson();
      if (!stored) return defaults();
      // Settings written by an older version gain new fields' defaults.
      const merged = { ...defaults(), ...(JSON.parse(stored) as Partial<FleetSettings>) };
      merged.strategy = { ...defaults().strategy, ...merged.strategy };
      return merged;
    },

    async put(next: FleetSettings): Promise<FleetSettings> {
      if (!Value.Check(FleetSettingsSchema, next)) throw new ValidationError('invalid fleet settings', [...Value.Errors(FleetSettingsSchema, next)].map((e) => `${e.instancePath} ${e.message}`));
      const outside = next.channels.filter((c) => !isImageAllowed(c.image, next.imageAllowlist));
      if (outside.length) {
        throw new ValidationError('every channel image must be on the image allowlist', { images: outside.map((c) => c.image) }, 'image_not_allowed');
      }
      if (new Set(next.channels.map((c) => c.image)).size !== next.channels.length) {
        throw new ValidationError('each image may have one channel', undefined);
      }
      await settings.saveFleetJson(JSON.stringify(next));
      return next;
    },

    /** The personal workspace a user's agent answers to; made on first need. */
    personalWorkspaceId(userId: string): Promise<string> {
      return asSystem(db, (tx) => personalWorkspace(tx, userId));
    },

    /** The personal workspace made on first need (the workspaces service lists it). */
    ensurePersonalWorkspace(tx: Tx, userId: string): Promise<string> {
      return personalWorkspace(tx, userId);
    },

    async getUpdateConfig(workspaceId: string): Promise<UpdateConfigView> {
      // Callers checked the caller's role first; the row is read as declared system work.
      const row = await asSystem(db, (tx) => tx.tenantUpdateConfig.findUnique({ where: { workspaceId } }));
      const mode = (row?.mode as UpdateMode | undefined) ?? 'auto';
      const modeOverride = (row?.modeOverride as UpdateMode | null | undefined) ?? null;
      return { mode, preferredHourUtc: row?.preferredHourUtc ?? null, modeOverride, effectiveMode: modeOverride ?? mode };
    },

    async putUpdateConfig(workspaceId: string, cfg: UpdateConfig): Promise<UpdateConfigView> {
      await asSystem(db, (tx) => tx.tenantUpdateConfig.upsert({
        where: { workspaceId },
        create: { workspaceId, mode: cfg.mode, preferredHourUtc: cfg.preferredHourUtc },
        update: { mode: cfg.mode, preferredHourUtc: cfg.preferredHourUtc },
      }));
      return this.getUpdateConfig(workspaceId);
    },

    /** An instance admin's override of a workspace's mode (null lifts it); the workspace's own choice is kept underneath. */
    async setModeOverride(workspaceId: string, modeOverride: UpdateMode | null): Promise<UpdateConfigView> {
      await asSystem(db, (tx) => tx.tenantUpdateConfig.upsert({
        where: { workspaceId },
        create: { workspaceId, modeOverride },
        update: { modeOverride },
      }));
      return this.getUpdateConfig(workspaceId);
    },
  };
}

export type FleetSettingsService = ReturnType<typeof createFleetSettingsService>;
