import os from 'node:os';
import { Piscina } from 'piscina';

// Password hashing off the event loop (piscina: a pool of worker threads).
// One pool per process, created on first use and sized to the machine: an
// attacker's wave of sign-ins queues here instead of blocking the proxy.

export const BCRYPT_COST = 12;

let pool: Piscina | null = null;
const workers = () =>
  (pool ??= new Piscina({
    filename: new URL('../workers/password.worker.mjs', import.meta.url).href,
    maxThreads: Math.max(1, Math.min(4, os.availableParallelism() - 1)),
    // Idle threads go away, so a quiet API costs no memory for them.
    idleTimeout: 30_000,
  }));

export function hashPassword(password: string, cost = BCRYPT_COST): Promise<string> {
  return workers().run({ password, cost }, { name: 'hash' });
}

export function verifyPassword(password: string, hash: string): Promise<boolean> {
  return workers().run({ password, hash }, { name: 'compare' });
}

export async function closePasswordPool(): Promise<void> {
  const p = pool;
  pool = null;
  await p?.destroy();
}
