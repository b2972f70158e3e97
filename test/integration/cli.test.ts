import { spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asSystem } from '../../core/db.ts';
import { parseConfig } from '../../core/config.ts';
import { createKeyring } from '../../core/crypto.ts';
import { createCore } from '../../core/hangar.ts';
import { repoRoot } from '../../core/runtime/stack.runtime.ts';
import { createTestUser, freshDatabase, startHangar, type Hangar } from '../support/hangar.harness.ts';

// The command line, against the real database.
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

  it('prints the setup code, makes the one breakglass and tokens, and refuses bad arguments', async () => {
    // A first boot of its own: the run's shared database is past onboarding.
    const fresh = await freshDatabase({ onboarded: false });
    const env = { DATABASE_URL: fresh.url };
    const core = createCore(parseConfig({ ...h.env, ...env }));
    try {
      const code = cli(['setup-code'], '', env);
      expect(code.status, code.stderr).toBe(0);
      expect(code.stdout.trim()).toMatch(/^[A-Z2-9]{4}(-[A-Z2-9]{4}){3}$/);
      expect(cli(['setup-code'], '', env).stdout).toBe(code.stdout); // the same code until it is used
      expect(await core.setupCodes.matches(code.stdout.trim())).toBe(true);

      const username = `cli-${randomUUID().slice(0, 8)}`;
      const made = cli(['admin', 'create-breakglass', '--username', username, '--password-stdin'], 'a very long password\n', env);
      expect(made.status, made.stderr).toBe(0);
      expect(JSON.parse(made.stdout).user).toMatchObject({ username, role: 'admin', authSource: 'breakglass' });
      expect(made.stdout).not.toContain('a very long password');
      // The console claimed the instance: the code is used up.
      expect(await core.setupCodes.matches(code.stdout.trim())).toBe(false);
      expect(cli(['setup-code'], '', env).stdout).toMatch(/claimed already/);

      const token = cli(['admin', 'create-token', '--username', username, '--name', 'ci'], '', env);
      expect(token.status, token.stderr).toBe(0);
      const plaintext = token.stdout.match(/hgr_\S+/)![0];
      expect((await core.users.resolveToken(plaintext))?.user.username).toBe(username);

      expect(cli(['admin', 'create-user', '--username', `x-${username}`, '--password-stdin'], 'short', env).status).toBe(1);
      expect(cli(['admin', 'create-user', '--username', `y-${username}`], '', env).status).toBe(1);
      // One breakglass, whatever its name.
      const second = cli(['admin', 'create-breakglass', '--username', `other-${username}`, '--password-stdin'], 'another long password', env);
      expect(second.status).toBe(1);
      expect(second.stderr).toMatch(/breakglass admin already exists/);
      expect(await core.db.user.count({ where: { authSource: 'breakglass' } })).toBe(1);

      // The console resets the breakglass's password (no name needed) and ends its sessions.
      const breakglass = (await core.breakglass.existing())!;
      const session = await core.users.createSession(breakglass.id);
      const reset = cli(['admin', 'reset-password', '--password-stdin'], 'the console chose this\n', env);
      expect(reset.status, reset.stderr).toBe(0);
      expect(reset.stdout).toContain(`password of ${username} reset`);
      expect(reset.stdout).not.toContain('the console chose this');
      expect((await core.users.authenticate(username, 'the console chose this')).id).toBe(breakglass.id);
      await expect(core.users.authenticate(username, 'a very long password')).rejects.toThrow(/Wrong username or password/);
      expect(await core.users.resolveSession(session.token)).toBeNull();
      expect(await asSystem(core.db, (tx) => tx.auditLog.count({ where: { action: 'user.password_reset_cli', target: `user:${breakglass.id}` } }))).toBe(1);
      // Never on the command line, never too short, never for an account whose password is not Hangar's.
      expect(cli(['admin', 'reset-password'], '', env).stderr).toMatch(/--password-stdin is required/);
      expect(cli(['admin', 'reset-password', '--password-stdin'], 'short', env).status).toBe(1);
      const sso = await core.db.user.create({ data: { username: `sso-${username}`, email: `sso-${username}@example.com`, displayName: 'SSO', authSource: 'oidc' } });
      const refused = cli(['admin', 'reset-password', '--username', sso.username!, '--password-stdin'], 'a long enough password', env);
      expect(refused.status).toBe(1);
      expect(refused.stderr).toMatch(/signs in through oidc/);
      expect(cli(['admin', 'reset-password', '--username', 'nobody-here', '--password-stdin'], 'a long enough password', env).stderr).toMatch(/no user nobody-here/);
      expect(cli(['frobnicate']).status).toBe(2);
    } finally {
      await core.close();
      await fresh.drop();
    }
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
    const [provider] = await h.core.providers.list(user.id);
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
