import { describe, expect, it } from 'vitest';
import { RateLimitedError } from '../../core/errors.ts';
import { createLoginThrottle } from '../../core/services/login-throttle.ts';

describe('login throttle', () => {
  it('blocks an account after its failures, for the rest of the window', () => {
    const t = createLoginThrottle({ maxPerAccount: 3, maxPerAddress: 10, windowMs: 60_000 });
    const keys = ['account:a', 'ip:1.2.3.4'];
    for (let i = 0; i < 3; i++) {
      t.check(keys, 1000 + i);
      t.fail(keys, 1000 + i);
    }
    expect(() => t.check(keys, 2000)).toThrow(RateLimitedError);
    try {
      t.check(keys, 2000);
    } catch (e) {
      expect((e as RateLimitedError).headers!['retry-after']).toBe('59');
    }
    expect(() => t.check(['account:b', 'ip:1.2.3.4'], 2000)).not.toThrow();
    expect(() => t.check(keys, 61_001)).not.toThrow();
  });

  it('gives an address more room than an account, and success clears only the account', () => {
    const t = createLoginThrottle({ maxPerAccount: 2, maxPerAddress: 4, windowMs: 60_000 });
    for (const acct of ['x', 'y']) for (let i = 0; i < 2; i++) t.fail([`account:${acct}`, 'ip:9'], 10);
    expect(() => t.check(['account:z', 'ip:9'], 20)).toThrow(/Too many/);
    t.succeed(['account:x']);
    expect(() => t.check(['account:x'], 20)).not.toThrow();
    expect(() => t.check(['ip:9'], 20)).toThrow();
  });
});
