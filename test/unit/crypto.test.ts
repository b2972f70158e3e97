import { describe, expect, it } from 'vitest';
import { createKeyring, isEncrypted, safeEqual } from '../../core/crypto.ts';

const KEY_A = 'a'.repeat(40);
const KEY_B = 'b'.repeat(40);

describe('secrets at rest', () => {
  it('round-trips and never repeats a ciphertext', () => {
    const ring = createKeyring(KEY_A);
    const one = ring.encrypt('sk-secret');
    const two = ring.encrypt('sk-secret');
    expect(one).toMatch(/^enc:v1:[A-Za-z0-9_-]{8}:/);
    expect(one).not.toBe(two);
    expect(one).not.toContain('sk-secret');
    expect(ring.decrypt(one)).toBe('sk-secret');
    expect(isEncrypted(one)).toBe(true);
    expect(isEncrypted('sk-secret')).toBe(false);
  });

  it('detects tampering', () => {
    const ring = createKeyring(KEY_A);
    const c = ring.encrypt('hello');
    const parts = c.split(':');
    const ct = Buffer.from(parts[5], 'base64url');
    ct[0] ^= 1;
    parts[5] = ct.toString('base64url');
    expect(() => ring.decrypt(parts.join(':'))).toThrow();
  });

  it('rotates: the new ring reads old values and writes under the new key', () => {
    const old = createKeyring(KEY_A);
    const sealed = old.encrypt('value');
    const rotating = createKeyring(KEY_B, KEY_A);
    const resealed = rotating.encrypt(rotating.decrypt(sealed));
    expect(createKeyring(KEY_B).decrypt(resealed)).toBe('value');
    expect(() => createKeyring(KEY_B).decrypt(sealed)).toThrow(/unknown key/);
    expect(rotating.keyId).not.toBe(old.keyId);
  });

  it('refuses short keys', () => {
    expect(() => createKeyring('short')).toThrow(/32 characters/);
  });

  it('compares tokens in constant time', () => {
    expect(safeEqual('abc', 'abc')).toBe(true);
    expect(safeEqual('abc', 'abd')).toBe(false);
    expect(safeEqual('abc', 'abcd')).toBe(false);
  });
});
