import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { HangarConfig } from '../config.ts';

/**
 * HANGAR_SECRET_KEY, or in development a key generated once into the data
 * directory (mode 0600) so a restart can still read what it encrypted.
 * Production never gets here without a key: config parsing refuses it.
 */
export function resolveSecretKey(cfg: HangarConfig): string {
  if (cfg.secretKey) return cfg.secretKey;
  if (cfg.mode === 'production') throw new Error('HANGAR_SECRET_KEY is required in production');
  const file = path.resolve(cfg.dataDir, 'secret.key');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(path.dirname(file), { recursive: true });
  const key = randomBytes(32).toString('base64url');
  writeFileSync(file, `${key}\n`, { mode: 0o600, flag: 'wx' });
  return key;
}
