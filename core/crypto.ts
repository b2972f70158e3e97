import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

// Secrets at rest: AES-256-GCM under a key derived (HKDF-SHA256) from
// HANGAR_SECRET_KEY. Format: enc:v1:<keyId>:<iv>:<tag>:<ciphertext> (base64url).
// The keyId (a fingerprint of the derived key) says which key sealed a value,
// so rotation can re-encrypt with a new key while reading with the old one.
const PREFIX = 'enc:v1:';

export interface Keyring {
  readonly keyId: string;
  /** A separate key for another purpose (e.g. cookie signing), derived from the current secret. */
  derive(label: string): string;
  encrypt(plaintext: string): string;
  decrypt(ciphertext: string): string;
}

function deriveKey(secret: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'hangar/secrets', 'aes-256-gcm v1', 32));
}

function keyIdOf(key: Buffer): string {
  return createHash('sha256').update(key).digest('base64url').slice(0, 8);
}

export function isEncrypted(value: string | null | undefined): value is string {
  return typeof value === 'string' && value.startsWith(PREFIX);
}

/** `secrets[0]` encrypts; every entry can decrypt (older keys during rotation). */
export function createKeyring(...secrets: string[]): Keyring {
  if (secrets.length === 0 || secrets.some((s) => !s || s.length < 32)) {
    throw new Error('HANGAR_SECRET_KEY must be at least 32 characters');
  }
  const keys = new Map(secrets.map((s) => {
    const k = deriveKey(s);
    return [keyIdOf(k), k] as const;
  }));
  const [currentId, currentKey] = [...keys.entries()][0];
  return {
    keyId: currentId,
    derive(label) {
      return Buffer.from(hkdfSync('sha256', secrets[0], 'hangar/derived', label, 32)).toString('base64url');
    },
    encrypt(plaintext) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', currentKey, iv);
      const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      const tag = cipher.getAuthTag();
      return `${PREFIX}${currentId}:${iv.toString('base64url')}:${tag.toString('base64url')}:${ct.toString('base64url')}`;
    },
    decrypt(ciphertext) {
      if (!isEncrypted(ciphertext)) throw new Error('not an encrypted value');
      const [keyId, iv, tag, ct] = ciphertext.slice(PREFIX.length).split(':');
      const key = keys.get(keyId);
      if (!key) throw new Error(`value sealed with unknown key ${keyId}; is HANGAR_SECRET_KEY right?`);
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString('utf8');
    },
  };
}

export function sha256(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

export function safeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}
