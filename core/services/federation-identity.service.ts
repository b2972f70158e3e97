import os from 'node:os';
import type { KeyObject } from 'node:crypto';
import type { HangarConfig } from '../config.ts';
import { endorse, fingerprintOf, generateKeyPair, keyIdOf, privateKeyFrom, type KeyPair } from '../federation-signatures.ts';
import type { SettingsService } from './settings.service.ts';

// This instance's federation identity: an Ed25519 key pair made at first
// boot and kept in `system_config`, sealed like every other secret (the
// keyring, so `hangar secrets rotate` re-encrypts it). `hangar federation
// rotate-key` replaces it. For the grace period every signed command and
// answer carries the new key endorsed by the old one (and the identity
// publishes both), so a peer that pinned the old key learns the new one from
// the first message it gets, without an admin and without a round trip.

interface StoredKeys {
  current: KeyPair & { createdAt: string };
  /** Keys rotated away from, with how long peers should still accept them. */
  previous: Array<{ publicKey: string; retiredAt: string; acceptedUntil: string }>;
  /** The current public key signed by the one before it (null before the first rotation). */
  endorsement: string | null;
}

export interface PublishedKey {
  keyId: string;
  publicKey: string;
  fingerprint: string;
}

export interface Identity extends PublishedKey {
  instanceId: string;
  name: string;
  /** The URL this instance calls itself: peers sign their commands' @target-uri with it. */
  url: string;
  algorithm: 'ed25519';
  previousKeys: Array<PublishedKey & { acceptedUntil: string }>;
  /** The current key signed by the previous one (base64url), when there is one. */
  endorsement: string | null;
}

export interface Signer {
  keyid: string;
  privateKey: KeyObject;
  publicKey: string;
  endorsement: string | null;
}

export const publishKey = (publicKey: string): PublishedKey => ({ keyId: keyIdOf(publicKey), publicKey, fingerprint: fingerprintOf(publicKey) });

export function createFederationIdentityService({ settings, config }: { settings: SettingsService; config: HangarConfig }) {
  let cached: Promise<StoredKeys> | null = null;
  let privateKey: { pkcs8: string; key: KeyObject } | null = null;

  async function load(): Promise<StoredKeys> {
    const stored = await settings.federationKeysJson();
    if (stored) return JSON.parse(stored) as StoredKeys;
    const fresh: StoredKeys = { current: { ...generateKeyPair(), createdAt: new Date().toISOString() }, previous: [], endorsement: null };
    // Two processes booting at once converge on whichever key was stored first.
    return JSON.parse(await settings.initFederationKeysJson(JSON.stringify(fresh))) as StoredKeys;
  }

  // Cached for a few seconds: a rotation by the CLI (another process) is picked up without a restart.
  let loadedAt = 0;
  const keys = (): Promise<StoredKeys> => {
    if (!cached || Date.now() - loadedAt > 5_000) {
      loadedAt = Date.now();
      cached = load().catch((err) => {
        cached = null;
        throw err;
      });
    }
    return cached;
  };

  const url = () => (config.publicUrl ?? `http://localhost:${config.port}`).replace(/\/$/, '');

  return {
    /** Made at first boot (the API and the worker call this at start); idempotent. */
    async ensure(): Promise<PublishedKey> {
      return publishKey((await keys()).current.publicKey);
    },

    /** The URL this instance calls itself (what peers sign as @target-uri); no database read. */
    url,

    /** Read fresh (not the signer's cache): a peer checking after a rotation must see the new key at once. */
    async identity(): Promise<Identity> {
      const k = await load();
      const now = Date.now();
      return {
        instanceId: await settings.instanceId(),
        name: config.instanceName ?? os.hostname(),
        url: url(),
        algorithm: 'ed25519',
        ...publishKey(k.current.publicKey),
        previousKeys: k.previous.filter((p) => Date.parse(p.acceptedUntil) > now).map((p) => ({ ...publishKey(p.publicKey), acceptedUntil: p.acceptedUntil })),
        endorsement: k.endorsement,
      };
    },

    /**
     * What this instance signs with: its instance id as keyid, its current
     * private key, and while a previous key is in its grace period the
     * endorsement peers need to trust the new one (`<public key>.<endorsement>`).
     */
    async signer(): Promise<Signer> {
      const k = await keys();
      if (privateKey?.pkcs8 !== k.current.privateKey) privateKey = { pkcs8: k.current.privateKey, key: privateKeyFrom(k.current.privateKey) };
      const inGrace = k.previous.some((p) => Date.parse(p.acceptedUntil) > Date.now());
      return {
        keyid: await settings.instanceId(),
        privateKey: privateKey.key,
        publicKey: k.current.publicKey,
        endorsement: inGrace && k.endorsement ? `${k.current.publicKey}.${k.endorsement}` : null,
      };
    },

    /**
     * A new key pair replaces the current one, which peers keep accepting for
     * `graceHours`; the new public key is endorsed by the old private key.
     */
    async rotate(graceHours = config.federationKeyGraceHours): Promise<{ previous: PublishedKey; current: PublishedKey; acceptedUntil: string }> {
      const old = await load();
      const instanceId = await settings.instanceId();
      const next = generateKeyPair();
      const now = new Date();
      const acceptedUntil = new Date(now.getTime() + graceHours * 3600_000).toISOString();
      const stored: StoredKeys = {
        current: { ...next, createdAt: now.toISOString() },
        previous: [{ publicKey: old.current.publicKey, retiredAt: now.toISOString(), acceptedUntil }, ...old.previous.filter((p) => Date.parse(p.acceptedUntil) > now.getTime())],
        endorsement: endorse(privateKeyFrom(old.current.privateKey), instanceId, next.publicKey),
      };
      await settings.saveFederationKeysJson(JSON.stringify(stored));
      cached = null;
      return { previous: publishKey(old.current.publicKey), current: publishKey(next.publicKey), acceptedUntil };
    },
  };
}

export type FederationIdentityService = ReturnType<typeof createFederationIdentityService>;
