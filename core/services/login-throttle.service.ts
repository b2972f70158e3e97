import { RateLimitedError } from '../errors.ts';

// Failed sign-ins (and setup-code guesses), counted in memory per API process.
//
// Per (account, address) pair, with backoff: past a few failures each further
// one doubles the wait. An attacker guessing the admin's password slows only
// their own address's attempts at that account; the admin signing in from
// anywhere else is never locked out (a per-account lock would let anyone lock
// the breakglass out by failing five times).
//
// Per address, across accounts: a cap that stops one address spraying many
// accounts. An office behind one NAT shares it, so it is generous.

export interface ThrottleOptions {
  freeFailuresPerPair?: number;
  maxPerAddress?: number;
  windowMs?: number;
  maxBackoffMs?: number;
}

export function createLoginThrottle(opts: ThrottleOptions = {}) {
  const free = opts.freeFailuresPerPair ?? 5;
  const maxPerAddress = opts.maxPerAddress ?? 50;
  const windowMs = opts.windowMs ?? 15 * 60_000;
  const maxBackoffMs = opts.maxBackoffMs ?? windowMs;
  const failures = new Map<string, number[]>();

  const recent = (key: string, now: number) => (failures.get(key) ?? []).filter((t) => now - t < windowMs);
  const pairKey = (account: string | null, address: string) => `pair:${account ?? '-'}|${address}`;
  const addressKey = (address: string) => `ip:${address}`;
  const refuse = (waitMs: number): never => {
    throw new RateLimitedError('Too many failed attempts; try again later', Math.max(1, Math.ceil(waitMs / 1000)), 'too_many_attempts');
  };

  function record(key: string, now: number, keep: number): void {
    failures.set(key, [...recent(key, now), now].slice(-keep));
    // Bound memory: forget the oldest keys first.
    if (failures.size > 100_000) failures.delete(failures.keys().next().value as string);
  }

  return {
    /** Throws 429 while this address must wait (for this account, or at all). */
    check(account: string | null, address: string, now = Date.now()): void {
      const byAddress = recent(addressKey(address), now);
      if (byAddress.length >= maxPerAddress) refuse(byAddress[0] + windowMs - now);
      const byPair = recent(pairKey(account, address), now);
      if (byPair.length >= free) {
        const wait = Math.min(maxBackoffMs, 1000 * 2 ** (byPair.length - free));
        const until = byPair[byPair.length - 1] + wait;
        if (now < until) refuse(until - now);
      }
    },
    fail(account: string | null, address: string, now = Date.now()): void {
      record(pairKey(account, address), now, free + 32);
      record(addressKey(address), now, maxPerAddress);
    },
    succeed(account: string | null, address: string): void {
      failures.delete(pairKey(account, address));
    },
  };
}

export type LoginThrottle = ReturnType<typeof createLoginThrottle>;
