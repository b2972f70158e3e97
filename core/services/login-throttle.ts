import { RateLimitedError } from '../errors.ts';

// Failed sign-ins counted per account and per address in a sliding window:
// past the limit, answers are 429 with Retry-After until the window moves on.
// In memory, per API process: a brute force against several replicas is still
// slowed by each, and the bcrypt cost bounds the rate anyway.
export function createLoginThrottle(opts: { maxPerAccount?: number; maxPerAddress?: number; windowMs?: number } = {}) {
  // An address may be a whole office behind one NAT: it gets more room than an account.
  const maxFor = (key: string) => (key.startsWith('ip:') ? (opts.maxPerAddress ?? 50) : (opts.maxPerAccount ?? 5));
  const windowMs = opts.windowMs ?? 15 * 60_000;
  const failures = new Map<string, number[]>();

  const recent = (key: string, now: number) => (failures.get(key) ?? []).filter((t) => now - t < windowMs);

  return {
    /** Throws 429 when either the account or the address is over the limit. */
    check(keys: string[], now = Date.now()): void {
      for (const key of keys) {
        const times = recent(key, now);
        if (times.length >= maxFor(key)) {
          const retry = Math.ceil((times[0] + windowMs - now) / 1000);
          throw new RateLimitedError('Too many failed sign-ins; try again later', Math.max(1, retry), 'too_many_attempts');
        }
      }
    },
    fail(keys: string[], now = Date.now()): void {
      for (const key of keys) {
        failures.set(key, [...recent(key, now), now].slice(-maxFor(key)));
      }
      // Bound memory: forget the oldest keys first.
      if (failures.size > 100_000) failures.delete(failures.keys().next().value as string);
    },
    succeed(keys: string[]): void {
      for (const key of keys) failures.delete(key);
    },
  };
}

export type LoginThrottle = ReturnType<typeof createLoginThrottle>;
