import { describe, expect, it } from 'vitest';
import { RateLimitedError } from '../../core/errors.ts';
import { createLoginThrottle } from '../../core/services/login-throttle.service.ts';

const retryAfter = (fn: () => void): number => {
  try {
    fn();
  } catch (e) {
    if (e instanceof RateLimitedError) return Number(e.headers!['retry-after']);
    throw e;
  }
  return 0;
};

describe('login throttle', () => {
  it('backs off one (account, address) pair, doubling the wait with each further failure', () => {
    const t = createLoginThrottle({ freeFailuresPerPair: 3, maxPerAddress: 100, windowMs: 600_000 });
    for (let i = 0; i < 3; i++) {
      t.check('admin', '203.0.113.9', 1000);
      t.fail('admin', '203.0.113.9', 1000);
    }
    expect(retryAfter(() => t.check('admin', '203.0.113.9', 1000))).toBe(1);
    expect(() => t.check('admin', '203.0.113.9', 2000)).not.toThrow();
    t.fail('admin', '203.0.113.9', 2000);
    expect(retryAfter(() => t.check('admin', '203.0.113.9', 2000))).toBe(2);
    t.fail('admin', '203.0.113.9', 4000);
    expect(retryAfter(() => t.check('admin', '203.0.113.9', 4000))).toBe(4);
  });

  it('never locks the account itself: the same account from another address signs in', () => {
    const t = createLoginThrottle({ freeFailuresPerPair: 5, windowMs: 600_000 });
    for (let i = 0; i < 40; i++) t.fail('breakglass', '203.0.113.9', 1000 + i);
    expect(() => t.check('breakglass', '203.0.113.9', 1100)).toThrow(RateLimitedError);
    expect(() => t.check('breakglass', '198.51.100.7', 1100)).not.toThrow();
  });

  it('caps one address across accounts, and success clears only its own pair', () => {
    const t = createLoginThrottle({ freeFailuresPerPair: 2, maxPerAddress: 4, windowMs: 60_000 });
    for (const acct of ['x', 'y']) for (let i = 0; i < 2; i++) t.fail(acct, '9.9.9.9', 10);
    expect(() => t.check('z', '9.9.9.9', 20)).toThrow(/Too many/);
    expect(() => t.check('z', '8.8.8.8', 20)).not.toThrow();
    t.succeed('x', '9.9.9.9');
    expect(() => t.check('z', '9.9.9.9', 20)).toThrow(); // the address cap stays
    expect(() => t.check('x', '9.9.9.9', 60_011)).not.toThrow(); // the window moved on
  });
});
