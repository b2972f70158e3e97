import { spawn, spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createKeyring } from '../../core/crypto.ts';
import { ensureDatabase } from '../../core/runtime/postgres.runtime.ts';
import { repoRoot } from '../../core/runtime/stack.runtime.ts';
import { applyMigrations } from '../../prisma/migrate.ts';
import { createTestUser, startHangar, type Hangar } from '../support/hangar.harness.ts';

// The command line and the migration runner, against the real database.
describe('hangar CLI', () => {
  let h: Hangar;
  beforeAll(async () => {
    h = await startHangar({}, { worker: false });
  });
  afterAll(async () => h?.stop());

  const cli = (args: string[], input = '', env: Record<string, string> = {}) =>
    spawnSync(process.execPath, ['bin/hangar.mjs', ...args], {
      cwd: repoRoot,
      input,
      encoding: 'utf8',
      env: { ...h.env, ...env },
    });

  it('creates users and tokens, and refuses bad arguments', async () => {
    const username = `cli-${randomUUID().slice(0, 8)}`;
    const made = cli(['admin', 'create-breakglass', '--username', username, '--password-stdin'], 'a very long password\n');
    expect(made.status, made.stderr).toBe(0);
    expect(JSON.parse(made.stdout).user).toMatchObject({ username, role: 'admin', authSource: 'breakglass' });
    expect(made.stdout).not.toContain('a very long password');

    const token = cli(['admin', 'create-token', '--username', username, '--name', 'ci']);
    expect(token.status, token.stderr).toBe(0);
    const plaintext = token.stdout.match(/hgr_\S+/)![0];
    const me = await fetch(`${h.url}/api/auth/me`, { headers: { authorization: `Bearer ${plaintext}` } });
    expect((await me.json()).user.username).toBe(username);

    expect(cli(['admin', 'create-user', '--username', `x-${username}`, '--password-stdin'], 'short').status).toBe(1);
    expect(cli(['admin', 'create-user', '--username', `y-${username}`]).status).toBe(1);
    expect(cli(['admin', 'create-breakglass', '--username', username, '--password-stdin'], 'another long password').status).toBe(1);
    expect(cli(['frobnicate']).status).toBe(2);
  });

  it('secrets rotate re-encrypts every stored secret under the new key', async () => {
    const user = await createTestUser(h);
    const res = await user.api('/api/me/providers', { body: { name: 'rot', displayName: 'Rot', type: 'openai', apiKey: 'sk-rotate-me-9876' } });
    expect(res.status).toBe(201);
    const agent = await h.core.agents.getOrCreate('user', user.id);
    const oldToken = h.core.agents.gatewayToken(agent);
    const newKey = randomBytes(32).toString('base64url');

    const out = cli(['secrets', 'rotate', '--new-key-stdin'], newKey);
    expect(out.status, out.stderr).toBe(0);
    expect(out.stdout).toContain('re-encrypted');

    const newRing = createKeyring(newKey);
    const oldRing = createKeyring(h.env.HANGAR_SECRET_KEY!);
    const provider = await h.core.db.llmProvider.findFirstOrThrow({ where: { userId: user.id } });
    expect(newRing.decrypt(provider.apiKey!)).toBe('sk-rotate-me-9876');
    expect(() => oldRing.decrypt(provider.apiKey!)).toThrow();
    const row = await h.core.agents.get(agent.id);
    expect(newRing.decrypt(row.gatewayToken)).toBe(oldToken);
    // Put the shared test database back under the run's key for the other tests.
    const back = spawnSync(process.execPath, ['bin/hangar.mjs', 'secrets', 'rotate', '--new-key-stdin'], {
      cwd: repoRoot,
      input: h.env.HANGAR_SECRET_KEY,
      encoding: 'utf8',
      env: { ...h.env, HANGAR_SECRET_KEY: newKey },
    });
    expect(back.status, back.stderr).toBe(0);
    expect(oldRing.decrypt((await h.core.agents.get(agent.id)).gatewayToken)).toBe(oldToken);
  });
});

describe('migrations (Prisma schema engine, WebAssembly)', () => {
  it('apply to an empty database, concurrently from two callers, then are a no-op', async () => {
    const adminUrl = inject('stack').adminDatabaseUrl;
    if (!adminUrl) return; // an external TEST_DATABASE_URL: no server to create databases on
    const name = `migrate_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
    await ensureDatabase(adminUrl, name);
    const url = adminUrl.replace(/\/postgres$/, `/${name}`);
    try {
      // Two processes at once, as two Hangar processes booting together would.
      const deploy = () =>
        new Promise<{ code: number | null; out: string }>((resolve) => {
          const child = spawn(process.execPath, ['--import', 'tsx', 'prisma/migrate.cli.ts', 'deploy'], {
            cwd: repoRoot,
            env: { ...process.env, DATABASE_URL: url },
          });
          let out = '';
          child.stdout.on('data', (d) => (out += d));
          child.stderr.on('data', (d) => (out += d));
          child.on('exit', (code) => resolve({ code, out }));
        });
      const [a, b] = await Promise.all([deploy(), deploy()]);
      expect(a.code, a.out).toBe(0);
      expect(b.code, b.out).toBe(0);
      expect([a.out, b.out].filter((o) => o.includes('applied:'))).toHaveLength(1);
      expect((await applyMigrations(url)).applied).toEqual([]);
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      const { rows } = await client.query('SELECT migration_name, finished_at FROM _prisma_migrations');
      const tables = await client.query("SELECT to_regclass('public.agents') AS t");
      await client.end();
      expect(rows.length).toBeGreaterThan(0);
      expect(rows.every((r) => r.finished_at)).toBe(true);
      expect(tables.rows[0].t).toBe('agents');
    } finally {
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    }
  });
});
