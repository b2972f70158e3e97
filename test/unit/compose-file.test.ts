import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_ENV } from '../../core/config.ts';
import { repoRoot } from '../../core/runtime/paths.runtime.ts';
import { interpolate, readCompose, serviceEnv } from '../support/compose-env.ts';

// docker/compose.yaml's promises, checked on the file itself: the Docker
// socket in one service only, the start order, and only variables Hangar
// reads (a misspelt knob would otherwise be ignored in silence).
describe('docker/compose.yaml', () => {
  const compose = readCompose();
  const hangar = ['migrate', 'worker', 'docker-worker', 'api'];

  it('runs one image in four roles, on the host network', () => {
    for (const name of hangar) {
      const s = compose.services[name];
      expect(s.image, name).toBe('${HANGAR_IMAGE:-hangar/hangar:latest}');
      expect(s.command, name).toEqual([name]);
      expect(s.network_mode, name).toBe('host');
    }
  });

  it('mounts the Docker socket into the docker-worker only, which runs as root with NET_ADMIN', () => {
    const withSocket = Object.entries(compose.services).filter(([, s]) => (s.volumes ?? []).some((v) => v.includes('docker.sock')));
    expect(withSocket.map(([n]) => n)).toEqual(['docker-worker']);
    expect(compose.services['docker-worker'].user).toBe('0:0');
    expect(compose.services['docker-worker'].cap_add).toEqual(['NET_ADMIN']);
    for (const name of ['api', 'worker', 'migrate']) expect(compose.services[name].user, name).toBeUndefined();
  });

  it('starts migrate first, then the workers, then the API', () => {
    for (const name of ['worker', 'docker-worker', 'api']) {
      expect(compose.services[name].depends_on?.migrate, name).toEqual({ condition: 'service_completed_successfully' });
    }
    expect(Object.keys(compose.services.api.depends_on ?? {}).sort()).toEqual(['docker-worker', 'migrate', 'worker']);
    expect(compose.services.migrate.depends_on).toBeUndefined();
  });

  it('sets only variables Hangar reads, secrets through files, and production mode', () => {
    const known = new Set([...Object.values(CONFIG_ENV), 'HANGAR_MIGRATION_DATABASE_URL']);
    for (const name of hangar) {
      const env = serviceEnv(compose, name, {});
      expect(env.HANGAR_MODE, name).toBe('production');
      for (const key of Object.keys(compose.services[name].environment ?? {})) {
        expect(known.has(key.replace(/_FILE$/, '')), `${name}: ${key}`).toBe(true);
      }
      // Secrets never as plain values in the file.
      for (const secret of ['HANGAR_SECRET_KEY', 'DATABASE_URL', 'HANGAR_MIGRATION_DATABASE_URL']) expect(env[secret], `${name}: ${secret}`).toBeUndefined();
      for (const s of compose.services[name].secrets ?? []) expect(compose.secrets[s], s).toBeDefined();
    }
    expect(serviceEnv(compose, 'migrate', {}).HANGAR_MIGRATION_DATABASE_URL_FILE).toBe('/run/secrets/hangar_migration_database_url');
    expect(serviceEnv(compose, 'api', {}).HANGAR_MIGRATION_DATABASE_URL_FILE).toBeUndefined();
  });

  it('names files that exist in the repo', () => {
    for (const v of compose.services.postgres.volumes ?? []) {
      const host = v.split(':')[0];
      if (host.startsWith('./')) expect(existsSync(path.join(repoRoot, 'docker', host)), host).toBe(true);
    }
    // Every role the compose file uses is one the image's entrypoint knows.
    const entrypoint = readFileSync(path.join(repoRoot, 'docker/hangar/entrypoint.sh'), 'utf8');
    for (const name of hangar) expect(entrypoint).toMatch(new RegExp(`^\\s+${name}\\)`, 'm'));
  });

  it('interpolates as compose does', () => {
    expect(interpolate('${A:-x}/${B-y}/${C}/$$', { A: '', B: '', C: 'c' })).toBe('x//c/$');
    expect(interpolate('${A:-x}', { A: 'a' })).toBe('a');
    expect(() => interpolate('${A:?set A}', {})).toThrow(/set A/);
    expect(serviceEnv(compose, 'api', { HANGAR_PORT: '9999' }).PORT).toBe('9999');
  });
});
