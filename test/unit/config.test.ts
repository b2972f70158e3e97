import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, trustProxySetting } from '../../core/config.ts';

describe('config', () => {
  it('applies defaults and freezes', () => {
    const cfg = parseConfig({});
    expect(cfg.port).toBe(8080);
    expect(cfg.idleTimeoutMin).toBe(30);
    expect(Object.isFrozen(cfg)).toBe(true);
  });

  it('lists every problem at once and never echoes secrets', () => {
    let err: ConfigError | null = null;
    try {
      parseConfig({ PORT: 'eighty', LOG_LEVEL: 'loud', HANGAR_MODE: 'production', HANGAR_SECRET_KEY: 'tooshort-secret', HANGAR_AGENT_CPUS: '-1' });
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const text = err!.message;
    expect(text).toContain('PORT');
    expect(text).toContain('LOG_LEVEL: must be one of');
    expect(text).toContain('HANGAR_AGENT_CPUS');
    expect(text).toContain('DATABASE_URL: required in production');
    expect(text).toContain('HANGAR_SECRET_KEY');
    expect(text).not.toContain('tooshort-secret');
  });

  it('disk and token guards: defaults, and out-of-range values refused', () => {
    const cfg = parseConfig({});
    expect([cfg.chatRatePerMin, cfg.agentStorageMb, cfg.bootstrapTokenTtlSec, cfg.snapshotMinFreeMb]).toEqual([60, 1024, 300, 1024]);
    expect(parseConfig({ HANGAR_CHAT_RATE_PER_MIN: '5', HANGAR_SNAPSHOT_MIN_FREE_MB: '0' })).toMatchObject({ chatRatePerMin: 5, snapshotMinFreeMb: 0 });
    let err: ConfigError | null = null;
    try {
      parseConfig({ HANGAR_CHAT_RATE_PER_MIN: '0', HANGAR_AGENT_STORAGE_MB: '-1', HANGAR_BOOTSTRAP_TOKEN_TTL_SEC: '5' });
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err?.problems.map((p) => p.split(':')[0]).sort()).toEqual(['HANGAR_AGENT_STORAGE_MB', 'HANGAR_BOOTSTRAP_TOKEN_TTL_SEC', 'HANGAR_CHAT_RATE_PER_MIN']);
  });

  it('production requires a secret key', () => {
    expect(() => parseConfig({ HANGAR_MODE: 'production', DATABASE_URL: 'postgres://x/y', TEMPORAL_ADDRESS: 'x:7233' })).toThrow(
      /HANGAR_SECRET_KEY: required/,
    );
  });

  it('trusts X-Forwarded-For only from named hops or proxies, never from everyone', () => {
    expect(() => parseConfig({ HANGAR_TRUST_PROXY: 'true' })).toThrow(/would believe any X-Forwarded-For/);
    expect(trustProxySetting(parseConfig({}))).toBe(false);
    expect(trustProxySetting(parseConfig({ HANGAR_TRUST_PROXY: '10.0.0.5, 10.0.1.0/24' }))).toBe('10.0.0.5, 10.0.1.0/24');
    const hops = trustProxySetting(parseConfig({ HANGAR_TRUST_PROXY: '2' })) as (a: string, hop: number) => boolean;
    expect([hops('x', 0), hops('x', 1), hops('x', 2)]).toEqual([true, true, false]);
    expect(() => parseConfig({ HANGAR_TRUST_PROXY: 'yes please' })).toThrow(/HANGAR_TRUST_PROXY/);
  });
});
