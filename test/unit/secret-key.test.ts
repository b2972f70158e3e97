import { mkdtempSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../core/config.ts';
import { resolveSecretKey } from '../../core/runtime/secret-key.runtime.ts';

describe('the development secret key', () => {
  it('is generated once into the data dir, mode 0600, and reused', () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'hangar-key-'));
    const cfg = parseConfig({ HANGAR_DATA_DIR: dataDir });
    const first = resolveSecretKey(cfg);
    expect(first.length).toBeGreaterThanOrEqual(32);
    expect(statSync(path.join(dataDir, 'secret.key')).mode & 0o777).toBe(0o600);
    expect(resolveSecretKey(cfg)).toBe(first);
  });

  it('prefers HANGAR_SECRET_KEY', () => {
    const key = 'k'.repeat(40);
    expect(resolveSecretKey(parseConfig({ HANGAR_SECRET_KEY: key }))).toBe(key);
  });
});
