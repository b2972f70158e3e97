import { ONBOARDING_COMPLETED_KEY, type OnboardingState } from '../contracts/onboarding.contract.ts';
import type { Keyring } from '../crypto.ts';
import type { Db, Tx } from '../db.ts';

// The one owner of `system_config`: instance-wide settings that live in the
// database so a change applies without a restart (onboarding state, OIDC,
// fleet settings, the instance id, GitHub sign-in). Secrets are stored encrypted and only
// decrypted for the code that uses them.

export const SETTING_KEYS = {
  onboardingCompleted: ONBOARDING_COMPLETED_KEY,
  oidcIssuer: 'oidc.issuer',
  oidcClientId: 'oidc.clientId',
  oidcClientSecret: 'oidc.clientSecret',
  githubClientId: 'github.clientId',
  githubClientSecret: 'github.clientSecret',
  githubAllowedOrg: 'github.allowedOrg',
  fleet: 'fleet.settings',
  egress: 'egress.allowlist',
  instanceId: 'instance.id',
  /** This instance's federation key pairs (sealed: holds the private key); federation-identity.service.ts. */
  federationKeys: 'federation.keys',
  /** sha256 of the one-time setup code (setup-code.service.ts); gone once used. */
  setupCode: 'onboarding.setupCode',
} as const;

export interface OidcSettings {
  issuer: string;
  clientId: string;
  clientSecret: string;
}

export interface GithubSettings {
  clientId: string;
  clientSecret: string;
  /** Only members of this organisation may create an account by signing in. */
  allowedOrg: string;
}

const OIDC_KEYS = [SETTING_KEYS.oidcIssuer, SETTING_KEYS.oidcClientId, SETTING_KEYS.oidcClientSecret];
const GITHUB_KEYS = [SETTING_KEYS.githubClientId, SETTING_KEYS.githubClientSecret, SETTING_KEYS.githubAllowedOrg];

export function createSettingsService({ db, keyring }: { db: Db; keyring: Keyring }) {
  let instance: Promise<string> | null = null;

  async function read(key: string): Promise<string | null> {
    const row = await db.systemConfig.findUnique({ where: { key } });
    if (!row) return null;
    return row.encrypted ? keyring.decrypt(row.value) : row.value;
  }

  function upsert(key: string, value: string, encrypted = false) {
    const stored = encrypted ? keyring.encrypt(value) : value;
    return db.systemConfig.upsert({ where: { key }, create: { key, value: stored, encrypted }, update: { value: stored, encrypted } });
  }

  return {
    /** Cheap database liveness probe for /readyz. */
    async ping(): Promise<void> {
      await db.$queryRaw`SELECT 1`;
    },

    /** The onboarding steps once completed; null until then. Completion never reverts. */
    async onboardingCompleted(): Promise<OnboardingState['steps'] | null> {
      const v = await read(SETTING_KEYS.onboardingCompleted);
      return v ? (JSON.parse(v) as OnboardingState['steps']) : null;
    },

    async completeOnboarding(steps: OnboardingState['steps']): Promise<void> {
      await upsert(SETTING_KEYS.onboardingCompleted, JSON.stringify(steps));
    },

    async oidc(): Promise<OidcSettings | null> {
      const rows = await db.systemConfig.findMany({ where: { key: { in: OIDC_KEYS } } });
      const get = (k: string) => rows.find((r) => r.key === k);
      const issuer = get(SETTING_KEYS.oidcIssuer)?.value;
      const clientId = get(SETTING_KEYS.oidcClientId)?.value;
      const secret = get(SETTING_KEYS.oidcClientSecret);
      if (!issuer || !clientId || !secret) return null;
      return { issuer, clientId, clientSecret: secret.encrypted ? keyring.decrypt(secret.value) : secret.value };
    },

    async oidcIssuer(): Promise<string | null> {
      return read(SETTING_KEYS.oidcIssuer);
    },

    /** All three at once; the secret arrives already encrypted (it crossed workflow history that way). */
    async saveOidc(s: { issuer: string; clientId: string; clientSecretEnc: string }): Promise<void> {
      await db.$transaction([
        upsert(SETTING_KEYS.oidcIssuer, s.issuer),
        upsert(SETTING_KEYS.oidcClientId, s.clientId),
        db.systemConfig.upsert({
          where: { key: SETTING_KEYS.oidcClientSecret },
          create: { key: SETTING_KEYS.oidcClientSecret, value: s.clientSecretEnc, encrypted: true },
          update: { value: s.clientSecretEnc, encrypted: true },
        }),
      ]);
    },

    /** Sign-in through OIDC is off again (the admin settings page); the breakglass and local accounts are untouched. */
    async clearOidc(): Promise<void> {
      await db.systemConfig.deleteMany({ where: { key: { in: OIDC_KEYS } } });
    },

    async github(): Promise<GithubSettings | null> {
      const rows = await db.systemConfig.findMany({ where: { key: { in: GITHUB_KEYS } } });
      const get = (k: string) => rows.find((r) => r.key === k);
      const clientId = get(SETTING_KEYS.githubClientId)?.value;
      const allowedOrg = get(SETTING_KEYS.githubAllowedOrg)?.value;
      const secret = get(SETTING_KEYS.githubClientSecret);
      if (!clientId || !allowedOrg || !secret) return null;
      return { clientId, allowedOrg, clientSecret: secret.encrypted ? keyring.decrypt(secret.value) : secret.value };
    },

    /** All three at once, the secret encrypted at rest. */
    async saveGithub(s: GithubSettings): Promise<void> {
      await db.$transaction([
        upsert(SETTING_KEYS.githubClientId, s.clientId),
        upsert(SETTING_KEYS.githubAllowedOrg, s.allowedOrg),
        upsert(SETTING_KEYS.githubClientSecret, s.clientSecret, true),
      ]);
    },

    async clearGithub(): Promise<void> {
      await db.systemConfig.deleteMany({ where: { key: { in: GITHUB_KEYS } } });
    },

    async fleetJson(): Promise<string | null> {
      return read(SETTING_KEYS.fleet);
    },

    async saveFleetJson(value: string): Promise<void> {
      await upsert(SETTING_KEYS.fleet, value);
    },

    async setupCodeHash(): Promise<string | null> {
      return read(SETTING_KEYS.setupCode);
    },

    async saveSetupCodeHash(hash: string): Promise<void> {
      await upsert(SETTING_KEYS.setupCode, hash);
    },

    /** Inside a transaction: deletes the code if it (still) has this hash, or any code when `hash` is null. */
    async consumeSetupCode(tx: Tx, hash: string | null): Promise<boolean> {
      const { count } = await tx.systemConfig.deleteMany({ where: hash ? { key: SETTING_KEYS.setupCode, value: hash } : { key: SETTING_KEYS.setupCode } });
      return hash ? count === 1 : true;
    },

    async discardSetupCode(): Promise<void> {
      await db.systemConfig.deleteMany({ where: { key: SETTING_KEYS.setupCode } });
    },

    async egressJson(): Promise<string | null> {
      return read(SETTING_KEYS.egress);
    },

    async saveEgressJson(value: string): Promise<void> {
      await upsert(SETTING_KEYS.egress, value);
    },

    /** Back to the environment's default allowlist. */
    async clearEgress(): Promise<void> {
      await db.systemConfig.deleteMany({ where: { key: SETTING_KEYS.egress } });
    },

    async federationKeysJson(): Promise<string | null> {
      return read(SETTING_KEYS.federationKeys);
    },

    /** First boot: stores `value` unless another process got there first; answers what is stored. */
    async initFederationKeysJson(value: string): Promise<string> {
      await db.systemConfig.upsert({
        where: { key: SETTING_KEYS.federationKeys },
        create: { key: SETTING_KEYS.federationKeys, value: keyring.encrypt(value), encrypted: true },
        update: {},
      });
      return (await read(SETTING_KEYS.federationKeys))!;
    },

    async saveFederationKeysJson(value: string): Promise<void> {
      await upsert(SETTING_KEYS.federationKeys, value, true);
    },

    /** This installation's id, made once and kept in the database. */
    instanceId(): Promise<string> {
      instance ??= db.systemConfig
        .upsert({ where: { key: SETTING_KEYS.instanceId }, create: { key: SETTING_KEYS.instanceId, value: crypto.randomUUID() }, update: {} })
        .then((row) => row.value)
        .catch((err) => {
          instance = null;
          throw err;
        });
      return instance;
    },
  };
}

export type SettingsService = ReturnType<typeof createSettingsService>;
