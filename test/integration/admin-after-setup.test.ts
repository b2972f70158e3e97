import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { asSystem } from '../../core/db.ts';
import { hashPassword } from '../../core/services/passwords.service.ts';
import { createTestUser, freshDatabase, startHangar, type Hangar, type TestUser } from '../support/hangar.harness.ts';
import { browser, startOidcProvider } from '../support/oidc-provider.ts';
import { startSmtpSink } from '../support/smtp-sink.ts';

// Administration after onboarding, on the real stack (Postgres, a real OpenID
// provider and a real SMTP server on loopback): sign-in settings changed at
// any time, passwords (own change, mailed reset links), suspension and
// reactivation, a user's detail, tokens an admin issues, the audit log.
// The agent side of suspension (it stops) is in admin-users.test.ts.
describe('administration after onboarding', () => {
  let h: Hangar;
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let idp: Awaited<ReturnType<typeof startOidcProvider>>;
  let smtp: Awaited<ReturnType<typeof startSmtpSink>>;
  let admin: TestUser;

  beforeAll(async () => {
    smtp = await startSmtpSink();
    db = await freshDatabase();
    h = await startHangar({ DATABASE_URL: db.url, SMTP_URL: smtp.url }, { worker: false });
    idp = await startOidcProvider({ redirectUri: `${h.url}/api/auth/oidc/callback` });
    admin = await createTestUser(h, 'admin');
  });
  afterAll(async () => {
    await h?.stop();
    await idp?.close();
    await smtp?.close();
    await db?.drop();
  });

  /** A password sign-in: the session cookie and the CSRF token its writes carry (null when refused). */
  async function login(username: string, password: string) {
    const res = await fetch(`${h.url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) });
    const body = await res.json();
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith('hangar_session='))?.split(';')[0];
    if (!cookie) return { status: res.status, body, session: null };
    const me = await (await fetch(`${h.url}/api/auth/me`, { headers: { cookie } })).json();
    const session = {
      cookie,
      api: (path: string, init: { method?: string; body?: unknown } = {}) =>
        fetch(`${h.url}${path}`, {
          method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
          headers: { cookie, 'x-hangar-csrf': me.csrfToken, ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
          body: init.body === undefined ? undefined : JSON.stringify(init.body),
        }),
    };
    return { status: res.status, body, session };
  }
  const bearer = (token: string, path: string) => fetch(`${h.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  async function localUser(opts: { email?: string; password?: string } = {}) {
    const username = `u-${randomUUID().slice(0, 8)}`;
    const password = opts.password ?? 'the first long password';
    const user = await h.core.users.create({ username, email: opts.email, displayName: username, password });
    return { ...user, username, password };
  }
  const auditOf = (target: string, action: string) => asSystem(h.core.db, (tx) => tx.auditLog.findMany({ where: { target, action } }));

  it('OIDC settings are tested, saved, applied, changed and removed after onboarding; the breakglass works while OIDC is broken', async () => {
    const good = { issuerUrl: idp.issuer, clientId: 'hangar', clientSecret: 'hangar-client-secret' };
    const wrong = await (await admin.api('/api/admin/auth/oidc/test', { body: { ...good, clientSecret: 'not-the-secret' } })).json();
    expect(wrong.ok).toBe(false);
    expect(wrong.checks.find((c: { name: string }) => c.name === 'client')).toMatchObject({ ok: false });
    const right = await (await admin.api('/api/admin/auth/oidc/test', { body: good })).json();
    expect(right.ok, JSON.stringify(right)).toBe(true);
    expect(right.checks.map((c: { name: string }) => c.name)).toEqual(['discovery', 'signing_keys', 'client']);
    // Nothing stored yet: the stored settings cannot be tested, and nobody can sign in with OIDC.
    expect((await admin.api('/api/admin/auth/oidc/test', { method: 'POST' })).status).toBe(404);
    expect((await fetch(`${h.url}/api/auth/oidc/login`, { redirect: 'manual' })).status).toBe(404);

    // An issuer that does not answer is not saved.
    const unreachable = await admin.api('/api/admin/auth/oidc', { method: 'PUT', body: { ...good, issuerUrl: 'http://127.0.0.1:9' } });
    expect(unreachable.status).toBeGreaterThanOrEqual(400);
    expect((await (await admin.api('/api/admin/auth/settings')).json()).oidc).toBeNull();
    // A first save needs the secret.
    expect((await admin.api('/api/admin/auth/oidc', { method: 'PUT', body: { issuerUrl: idp.issuer, clientId: 'hangar' } })).status).toBe(400);

    const saved = await admin.api('/api/admin/auth/oidc', { method: 'PUT', body: good });
    expect(saved.status).toBe(200);
    const view = await saved.json();
    expect(view.oidc).toEqual({ issuerUrl: idp.issuer, clientId: 'hangar', clientSecretSet: true });
    expect(view.oidcRedirectUri).toBe(`${h.url}/api/auth/oidc/callback`);
    expect(JSON.stringify(view)).not.toContain(good.clientSecret);
    const audit = await auditOf('auth:oidc', 'auth.oidc.save');
    expect(audit).toHaveLength(1);
    expect(audit[0].actorId).toBe(admin.id);
    expect(JSON.stringify(audit)).not.toContain(good.clientSecret);
    expect((await (await admin.api('/api/admin/auth/oidc/test', { method: 'POST' })).json()).ok).toBe(true);
    expect((await (await fetch(`${h.url}/api/auth/config`)).json()).oidc).toBe(true);

    // Applied without a restart: the next sign-in uses it.
    const b = browser();
    const back = await b.request(await b.signInAtProvider(h.url, 'erin'));
    expect(back.res.status, back.body).toBe(302);
    expect(b.cookie(h.url, 'hangar_session')).toBeTruthy();

    // The stored secret stays when none is given for the same client; a new client needs its own.
    expect((await admin.api('/api/admin/auth/oidc', { method: 'PUT', body: { issuerUrl: idp.issuer, clientId: 'hangar' } })).status).toBe(200);
    expect((await (await admin.api('/api/admin/auth/oidc/test', { method: 'POST' })).json()).ok).toBe(true);
    const newClient = await admin.api('/api/admin/auth/oidc', { method: 'PUT', body: { issuerUrl: idp.issuer, clientId: 'another-client' } });
    expect(newClient.status).toBe(400);
    expect((await (await admin.api('/api/admin/auth/settings')).json()).oidc).toEqual({ issuerUrl: idp.issuer, clientId: 'hangar', clientSecretSet: true });

    // Members may neither see nor change them.
    const member = await createTestUser(h);
    expect((await member.api('/api/admin/auth/settings')).status).toBe(403);
    expect((await member.api('/api/admin/auth/oidc', { method: 'DELETE' })).status).toBe(403);
    expect((await member.api('/api/admin/auth/oidc/test', { body: good })).status).toBe(403);

    // The issuer goes away: OIDC says so, and the breakglass still signs in with its password.
    await h.core.settings.saveOidc({ issuer: 'http://127.0.0.1:9', clientId: 'hangar', clientSecretEnc: h.core.keyring.encrypt('x') });
    const broken = await fetch(`${h.url}/api/auth/oidc/login`, { redirect: 'manual' });
    expect(broken.status).toBe(503);
    const stored = await (await admin.api('/api/admin/auth/oidc/test', { method: 'POST' })).json();
    expect(stored.ok).toBe(false);
    expect(stored.checks[0]).toMatchObject({ name: 'discovery', ok: false });
    const breakglass = `bg-${randomUUID().slice(0, 8)}`;
    await h.core.breakglass.create({ username: breakglass, passwordHash: await hashPassword('breakglass password!'), setupCodeHash: null });
    expect((await login(breakglass, 'breakglass password!')).status).toBe(200);

    const removed = await admin.api('/api/admin/auth/oidc', { method: 'DELETE' });
    expect(removed.status).toBe(204);
    expect((await fetch(`${h.url}/api/auth/oidc/login`, { redirect: 'manual' })).status).toBe(404);
    expect((await (await fetch(`${h.url}/api/auth/config`)).json()).oidc).toBe(false);
    expect(await auditOf('auth:oidc', 'auth.oidc.remove')).toHaveLength(1);
    // Removing what is not there changes nothing and audits nothing.
    expect((await admin.api('/api/admin/auth/oidc', { method: 'DELETE' })).status).toBe(204);
    expect(await auditOf('auth:oidc', 'auth.oidc.remove')).toHaveLength(1);
  });

  it('a user changes their own password: the current one first; their other sessions end, this one stays', async () => {
    const u = await localUser();
    const here = (await login(u.username, u.password)).session!;
    const elsewhere = (await login(u.username, u.password)).session!;
    const token = (await h.core.users.createToken(u.id, 'cli')).token;

    const wrong = await here.api('/api/me/password', { body: { currentPassword: 'not my password', newPassword: 'a brand new long password' } });
    expect(wrong.status).toBe(401);
    expect((await here.api('/api/me/password', { body: { currentPassword: u.password, newPassword: 'short' } })).status).toBe(400);
    // A cookie write without the CSRF header is refused.
    const noCsrf = await fetch(`${h.url}/api/me/password`, { method: 'POST', headers: { cookie: here.cookie, 'content-type': 'application/json' }, body: JSON.stringify({ currentPassword: u.password, newPassword: 'a brand new long password' }) });
    expect(noCsrf.status).toBe(403);
    expect((await login(u.username, u.password)).status).toBe(200);

    const changed = await here.api('/api/me/password', { body: { currentPassword: u.password, newPassword: 'a brand new long password' } });
    expect(changed.status).toBe(204);
    expect((await here.api('/api/auth/me')).status).toBe(200);
    expect((await elsewhere.api('/api/auth/me')).status).toBe(401);
    // API tokens are not sessions: they stay (the user revokes them on their own).
    expect((await bearer(token, '/api/auth/me')).status).toBe(200);
    expect((await login(u.username, u.password)).status).toBe(401);
    expect((await login(u.username, 'a brand new long password')).status).toBe(200);
    expect(await auditOf(`user:${u.id}`, 'user.password_change')).toHaveLength(1);
    expect(JSON.stringify(await asSystem(h.core.db, (tx) => tx.auditLog.findMany({ where: { target: `user:${u.id}` } })))).not.toContain('a brand new long password');

    // An account without a password (single sign-on) has none to change.
    const sso = await h.core.users.create({ email: `sso-${randomUUID().slice(0, 6)}@example.com`, displayName: 'SSO' });
    const ssoToken = (await h.core.users.createToken(sso.id, 't')).token;
    const none = await fetch(`${h.url}/api/me/password`, { method: 'POST', headers: { authorization: `Bearer ${ssoToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ currentPassword: 'anything at all', newPassword: 'a brand new long password' }) });
    expect(none.status).toBe(409);
  });

  it('an admin mails a reset link: one-time, hashed at rest, expiring, the newest only; it ends the user\'s sessions', async () => {
    const email = `reset-${randomUUID().slice(0, 6)}@example.com`;
    const u = await localUser({ email });
    const session = (await login(u.username, u.password)).session!;
    const linkOf = () => {
      const mails = smtp.to(email);
      expect(mails.length).toBeGreaterThan(0);
      const m = /#\/reset-password\/([A-Za-z0-9_-]+)/.exec(mails.at(-1)!.text);
      expect(m, mails.at(-1)!.text).toBeTruthy();
      return m![1];
    };
    const send = async () => {
      const before = smtp.to(email).length;
      const res = await admin.api(`/api/admin/users/${u.id}/password-reset`, { method: 'POST' });
      expect(res.status).toBe(202);
      const body = await res.json();
      expect(body.sentTo).toBe(email);
      for (let i = 0; i < 100 && smtp.to(email).length === before; i++) await new Promise((r) => setTimeout(r, 50));
      return { body, token: linkOf() };
    };
    const redeem = (token: string, newPassword = 'chosen through the link') =>
      fetch(`${h.url}/api/auth/password-reset`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token, newPassword }) });

    const first = await send();
    expect(JSON.stringify(first.body)).not.toContain(first.token);
    expect(new Date(first.body.expiresAt).getTime()).toBeGreaterThan(Date.now());
    expect(smtp.to(email).at(-1)!.text).toContain(`${h.url}/#/reset-password/`);
    // Only a hash is stored.
    // (Row-level security: only declared system work reads reset rows.)
    const rows = await asSystem(h.core.db, (tx) => tx.passwordReset.findMany({ where: { userId: u.id } }));
    expect(rows).toHaveLength(1);
    expect(rows[0].tokenHash).not.toContain(first.token);
    expect(JSON.stringify(await asSystem(h.core.db, (tx) => tx.auditLog.findMany({ where: { target: `user:${u.id}` } })))).not.toContain(first.token);

    // A newer link replaces it.
    const second = await send();
    expect(second.token).not.toBe(first.token);
    const stale = await redeem(first.token);
    expect(stale.status).toBe(401);
    expect((await stale.json()).error.code).toBe('invalid_reset_token');
    expect((await redeem(second.token, 'short')).status).toBe(400);

    expect((await redeem(second.token)).status).toBe(204);
    expect((await session.api('/api/auth/me')).status).toBe(401);
    expect((await login(u.username, u.password)).status).toBe(401);
    expect((await login(u.username, 'chosen through the link')).status).toBe(200);
    // Once only.
    expect((await redeem(second.token, 'yet another long password')).status).toBe(401);
    expect((await login(u.username, 'chosen through the link')).status).toBe(200);

    // An expired link does nothing.
    const third = await send();
    await asSystem(h.core.db, (tx) => tx.passwordReset.updateMany({ where: { userId: u.id, usedAt: null }, data: { expiresAt: new Date(Date.now() - 1000) } }));
    expect((await redeem(third.token, 'too late for this one')).status).toBe(401);
    expect((await login(u.username, 'chosen through the link')).status).toBe(200);
    expect(await auditOf(`user:${u.id}`, 'user.password_reset_sent')).toHaveLength(3);
    expect(await auditOf(`user:${u.id}`, 'user.password_reset')).toHaveLength(1);

    // Nobody to mail, or a password that is not Hangar's: refused, with a reason.
    const noMail = await localUser();
    expect((await (await admin.api(`/api/admin/users/${noMail.id}/password-reset`, { method: 'POST' })).json()).error.code).toBe('no_email');
    const oidcUser = await h.core.db.user.create({ data: { email: `oidc-${randomUUID().slice(0, 6)}@example.com`, displayName: 'O', authSource: 'oidc' } });
    const sso = await admin.api(`/api/admin/users/${oidcUser.id}/password-reset`, { method: 'POST' });
    expect(sso.status).toBe(409);
    expect((await sso.json()).error.code).toBe('sso_account');
    expect((await admin.api(`/api/admin/users/${randomUUID()}/password-reset`, { method: 'POST' })).status).toBe(404);
    const member = await createTestUser(h);
    expect((await member.api(`/api/admin/users/${u.id}/password-reset`, { method: 'POST' })).status).toBe(403);
  });

  it('suspension stops sessions and tokens, deletes nothing, and is undone by reactivation', async () => {
    const u = await localUser();
    const session = (await login(u.username, u.password)).session!;
    const token = (await h.core.users.createToken(u.id, 'automation')).token;
    expect((await bearer(token, '/api/auth/me')).status).toBe(200);

    expect((await admin.api(`/api/admin/users/${admin.id}/suspend`, { method: 'POST' })).status).toBe(409);
    const suspended = await admin.api(`/api/admin/users/${u.id}/suspend`, { method: 'POST' });
    expect(suspended.status).toBe(200);
    expect(await suspended.json()).toMatchObject({ id: u.id, status: 'suspended', suspendedAt: expect.any(String) });
    expect((await session.api('/api/auth/me')).status).toBe(401);
    expect((await bearer(token, '/api/auth/me')).status).toBe(401);
    // The right password hears why; a wrong one learns nothing.
    const refused = await login(u.username, u.password);
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('account_suspended');
    expect((await login(u.username, 'a wrong long password')).status).toBe(401);
    // Twice is once.
    expect((await admin.api(`/api/admin/users/${u.id}/suspend`, { method: 'POST' })).status).toBe(200);
    expect(await auditOf(`user:${u.id}`, 'user.suspend')).toHaveLength(1);
    // Nothing is deleted.
    expect(await asSystem(h.core.db, (tx) => tx.apiToken.count({ where: { userId: u.id, revokedAt: null } }))).toBe(1);
    expect(await h.core.db.user.count({ where: { id: u.id } })).toBe(1);

    const back = await admin.api(`/api/admin/users/${u.id}/reactivate`, { method: 'POST' });
    expect(back.status).toBe(200);
    expect(await back.json()).toMatchObject({ status: 'active', suspendedAt: null });
    expect((await bearer(token, '/api/auth/me')).status).toBe(200);
    // The old session stays ended; a new sign-in works.
    expect((await session.api('/api/auth/me')).status).toBe(401);
    expect((await login(u.username, u.password)).status).toBe(200);
    const audit = await auditOf(`user:${u.id}`, 'user.reactivate');
    expect(audit).toHaveLength(1);
    expect(audit[0].before).toMatchObject({ status: 'suspended' });
    expect(audit[0].after).toMatchObject({ status: 'active' });

    // A deactivated user is neither suspended nor reactivated.
    const gone = await localUser();
    expect((await admin.api(`/api/admin/users/${gone.id}/deactivate`, { method: 'POST' })).status).toBe(200);
    expect((await admin.api(`/api/admin/users/${gone.id}/suspend`, { method: 'POST' })).status).toBe(409);
    expect((await admin.api(`/api/admin/users/${gone.id}/reactivate`, { method: 'POST' })).status).toBe(409);
    const member = await createTestUser(h);
    expect((await member.api(`/api/admin/users/${u.id}/suspend`, { method: 'POST' })).status).toBe(403);
    expect((await admin.api(`/api/admin/users/${randomUUID()}/suspend`, { method: 'POST' })).status).toBe(404);
  });

  it('a user\'s detail: agent, tokens (never the secret) and recent audit; an admin issues and revokes a scoped token, audited', async () => {
    const u = await localUser();
    const issued = await admin.api(`/api/admin/users/${u.id}/tokens`, { body: { name: 'deploy bot', scopes: ['agent'], expiresInDays: 7 } });
    expect(issued.status).toBe(201);
    const t = await issued.json();
    expect(t).toMatchObject({ name: 'deploy bot', scopes: ['agent'], token: expect.stringMatching(/^hgr_/) });
    // The token is the user's and as narrow as asked.
    const me = await (await bearer(t.token, '/api/auth/me')).json();
    expect(me.user.id).toBe(u.id);
    expect((await bearer(t.token, '/api/me/providers')).status).toBe(403);
    expect((await admin.api(`/api/admin/users/${u.id}/tokens`, { body: { name: 'x', scopes: ['root'] } })).status).toBe(400);
    expect((await admin.api(`/api/admin/users/${u.id}/tokens`, { body: { name: 'x', scopes: [] } })).status).toBe(400);

    const detail = await admin.api(`/api/admin/users/${u.id}`);
    expect(detail.status).toBe(200);
    const d = await detail.json();
    expect(d.user).toMatchObject({ id: u.id, username: u.username, status: 'active' });
    expect(d.agent).toBeNull();
    const listed = d.tokens.find((x: { id: string }) => x.id === t.id);
    expect(listed).toMatchObject({ name: 'deploy bot', scopes: ['agent'], prefix: t.prefix, lastUsedAt: expect.any(String), revokedAt: null });
    expect(JSON.stringify(d)).not.toContain(t.token);
    expect(JSON.stringify(d)).not.toMatch(/tokenHash|passwordHash/);
    expect(d.audit.map((a: { action: string }) => a.action)).toContain('token.issue');
    expect(d.audit.find((a: { action: string }) => a.action === 'token.issue')).toMatchObject({ actorId: admin.id });
    const issueAudit = await auditOf(`user:${u.id}`, 'token.issue');
    expect(issueAudit).toHaveLength(1);
    expect(JSON.stringify(issueAudit)).not.toContain(t.token);

    expect((await admin.api(`/api/admin/users/${u.id}/tokens/${t.id}`, { method: 'DELETE' })).status).toBe(204);
    expect((await bearer(t.token, '/api/auth/me')).status).toBe(401);
    expect(await auditOf(`user:${u.id}`, 'token.revoke')).toHaveLength(1);
    // Another user's token id under this user: not found.
    const other = await localUser();
    const otherToken = await h.core.users.createToken(other.id, 'theirs');
    expect((await admin.api(`/api/admin/users/${u.id}/tokens/${otherToken.id}`, { method: 'DELETE' })).status).toBe(404);
    expect((await bearer(otherToken.token, '/api/auth/me')).status).toBe(200);

    expect((await admin.api(`/api/admin/users/${randomUUID()}`)).status).toBe(404);
    const member = await createTestUser(h);
    expect((await member.api(`/api/admin/users/${u.id}`)).status).toBe(403);
    expect((await member.api(`/api/admin/users/${u.id}/tokens`, { body: { name: 'x', scopes: ['agent'] } })).status).toBe(403);
    // Not for a suspended user: the token would not work.
    await admin.api(`/api/admin/users/${other.id}/suspend`, { method: 'POST' });
    expect((await admin.api(`/api/admin/users/${other.id}/tokens`, { body: { name: 'x', scopes: ['agent'] } })).status).toBe(409);
  });

  it('the audit log: who did what to what, filtered, paginated, newest first, exported as CSV with the same filters', async () => {
    const u = await localUser();
    for (const role of ['admin', 'member', 'admin'] as const) {
      expect((await admin.api(`/api/admin/users/${u.id}`, { method: 'PATCH', body: { role } })).status).toBe(200);
    }
    const target = `user:${u.id}`;
    const page1 = await (await admin.api(`/api/admin/audit?target=${encodeURIComponent(target)}&limit=2`)).json();
    expect(page1.meta).toEqual({ total: 3, page: 1, limit: 2, totalPages: 2 });
    expect(page1.data.map((e: { after: { role: string } }) => e.after.role)).toEqual(['admin', 'member']);
    expect(page1.data[0]).toMatchObject({ action: 'user.update', target, actorId: admin.id, before: { role: 'member' } });
    const page2 = await (await admin.api(`/api/admin/audit?target=${encodeURIComponent(target)}&limit=2&page=2`)).json();
    expect(page2.data).toHaveLength(1);
    expect(page2.data[0].before).toMatchObject({ role: 'member' });

    // Prefix filters, actor, and a time window.
    const byPrefix = await (await admin.api('/api/admin/audit?action=auth.&limit=200')).json();
    expect(byPrefix.data.length).toBeGreaterThan(0);
    expect(byPrefix.data.every((e: { action: string }) => e.action.startsWith('auth.'))).toBe(true);
    const byActor = await (await admin.api(`/api/admin/audit?actorId=${admin.id}&action=user.update`)).json();
    expect(byActor.meta.total).toBeGreaterThanOrEqual(3);
    expect(byActor.data.every((e: { actorId: string }) => e.actorId === admin.id)).toBe(true);
    const future = new Date(Date.now() + 3_600_000).toISOString();
    expect((await (await admin.api(`/api/admin/audit?from=${encodeURIComponent(future)}`)).json()).meta.total).toBe(0);
    for (const bad of ['action=DROP%20TABLE', 'target=nocolon', 'from=yesterday', 'limit=1000', 'actorId=../x', 'sort=at']) {
      expect((await admin.api(`/api/admin/audit?${bad}`)).status, bad).toBe(400);
    }

    const csv = await admin.api(`/api/admin/audit.csv?target=${encodeURIComponent(target)}`);
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(csv.headers.get('content-disposition')).toMatch(/^attachment; filename="hangar-audit-.*\.csv"$/);
    const lines = (await csv.text()).trim().split('\r\n');
    expect(lines).toHaveLength(4);
    expect(lines[0].split(',')).toContain('action');
    expect(lines.slice(1).every((l) => l.includes('user.update') && l.includes(u.id))).toBe(true);
    // JSON inside a CSV field is quoted (its quotes doubled).
    expect(lines[1]).toMatch(/"\{""/);

    const member = await createTestUser(h);
    expect((await member.api('/api/admin/audit')).status).toBe(403);
    expect((await member.api('/api/admin/audit.csv')).status).toBe(403);
    expect((await fetch(`${h.url}/api/admin/audit.csv`)).status).toBe(401);
  });
});
