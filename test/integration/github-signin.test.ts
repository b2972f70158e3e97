import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asSystem } from '../../core/db.ts';
import { createTestUser, freshDatabase, startHangar, type Hangar, type TestUser } from '../support/hangar.harness.ts';
import { startFakeGithub } from '../support/github-fake.ts';
import { browser } from '../support/oidc-provider.ts';

// GitHub sign-in (@fastify/oauth2, GitHub preset) against a GitHub stand-in on
// loopback: configured from the admin API, applied without a restart; new
// accounts only for members of the allowed organisation; an existing account
// linked only through an admin's invitation, never by a matching email.
describe('GitHub sign-in', () => {
  let h: Hangar;
  let gh: Awaited<ReturnType<typeof startFakeGithub>>;
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let admin: TestUser;

  beforeAll(async () => {
    gh = await startFakeGithub();
    db = await freshDatabase();
    h = await startHangar({ DATABASE_URL: db.url, HANGAR_GITHUB_OAUTH_URL: gh.oauthUrl, HANGAR_GITHUB_API_URL: gh.apiUrl }, { worker: false });
    admin = await createTestUser(h, 'admin');
    gh.addUser({ id: 101, login: 'octo-member', name: 'Octo Member', emails: [{ email: 'Octo@Example.com', primary: true, verified: true }], orgs: ['Hangar-Org', 'other'] });
    gh.addUser({ id: 102, login: 'outsider', emails: [{ email: 'outsider@example.com', primary: true, verified: true }], orgs: ['other'] });
  });
  afterAll(async () => {
    await h?.stop();
    await gh?.close();
    await db?.drop();
  });

  const configure = (body: Record<string, unknown>) => admin.api('/api/admin/auth/github', { method: 'PUT', body });
  const good = () => ({ clientId: gh.client.id, clientSecret: gh.client.secret, allowedOrg: 'hangar-org' });

  /** Through Hangar's login, GitHub's approval and back to the callback, as `login`. */
  async function signIn(login: string, tamper: (callback: string) => string = (u) => u) {
    gh.signInAs(login);
    const b = browser();
    const start = await b.request(`${h.url}/api/auth/github/login`);
    if (start.res.status !== 302) return { b, status: start.res.status, body: start.body, me: null };
    expect(start.location!.startsWith(`${gh.oauthUrl}/login/oauth/authorize?`)).toBe(true);
    const approved = await b.request(start.location!);
    expect(approved.res.status).toBe(302);
    const back = await b.request(tamper(approved.location!));
    const session = b.cookie(h.url, 'hangar_session');
    const me = session ? (await (await fetch(`${h.url}/api/auth/me`, { headers: { cookie: `hangar_session=${session}` } })).json()).user : null;
    return { b, status: back.res.status, body: back.body, location: back.location, me };
  }

  it('is off until an admin configures it', async () => {
    const res = await fetch(`${h.url}/api/auth/github/login`, { redirect: 'manual' });
    expect(res.status).toBe(404);
    expect((await res.json()).error.code).toBe('github_not_configured');
    expect((await (await fetch(`${h.url}/api/auth/config`)).json()).github).toBe(false);
  });

  it('settings: tested before saving, saved without the secret in the answer or the audit log', async () => {
    const wrong = await admin.api('/api/admin/auth/github/test', { body: { ...good(), clientSecret: 'not-the-secret' } });
    const wrongBody = await wrong.json();
    expect(wrong.status).toBe(200);
    expect(wrongBody.ok).toBe(false);
    expect(wrongBody.checks.find((c: { name: string }) => c.name === 'client')).toMatchObject({ ok: false });
    const noOrg = await (await admin.api('/api/admin/auth/github/test', { body: { ...good(), allowedOrg: 'no-such-org' } })).json();
    expect(noOrg.checks.find((c: { name: string }) => c.name === 'organisation')).toMatchObject({ ok: false });
    const right = await (await admin.api('/api/admin/auth/github/test', { body: good() })).json();
    expect(right).toMatchObject({ ok: true });

    // Only printable ASCII: the OAuth client library refuses anything else (found by the fuzzer).
    expect((await configure({ ...good(), clientSecret: 'V\u00c7\u0019T' })).status).toBe(400);
    expect((await configure({ ...good(), clientSecret: 'has a space' })).status).toBe(400);
    const saved = await configure(good());
    expect(saved.status).toBe(200);
    const view = await saved.json();
    expect(view.github).toEqual({ clientId: gh.client.id, allowedOrg: 'hangar-org', clientSecretSet: true });
    expect(view.githubCallbackUrl).toBe(`${h.url}/api/auth/github/callback`);
    expect(JSON.stringify(view)).not.toContain(gh.client.secret);
    // Stored encrypted; the audit row says what changed, never the secret.
    const row = await h.core.db.systemConfig.findUnique({ where: { key: 'github.clientSecret' } });
    expect(row?.encrypted).toBe(true);
    expect(row?.value).not.toContain(gh.client.secret);
    const audit = await asSystem(h.core.db, (tx) => tx.auditLog.findMany({ where: { action: 'auth.github.save' } }));
    expect(audit).toHaveLength(1);
    expect(JSON.stringify(audit)).not.toContain(gh.client.secret);
    // The stored settings test as well (no body).
    expect((await (await admin.api('/api/admin/auth/github/test', { method: 'POST' })).json()).ok).toBe(true);
    // Members may not see or change them.
    const member = await createTestUser(h);
    expect((await member.api('/api/admin/auth/settings')).status).toBe(403);
    expect((await member.api('/api/admin/auth/github', { method: 'PUT', body: good() })).status).toBe(403);
    expect((await (await fetch(`${h.url}/api/auth/config`)).json()).github).toBe(true);
  });

  it('makes an account for a member of the allowed organisation, once, with PKCE', async () => {
    const first = await signIn('octo-member');
    expect(first.status, first.body).toBe(302);
    expect(new URL(first.location!).pathname).toBe('/');
    expect(first.me).toMatchObject({ username: 'github:101', email: 'octo@example.com', displayName: 'Octo Member', authSource: 'github', role: 'member' });
    const exchange = gh.exchanges.at(-1)!;
    expect(exchange.code_verifier?.length).toBeGreaterThanOrEqual(43);
    expect(exchange.client_secret).toBe(gh.client.secret);
    const again = await signIn('octo-member');
    expect(again.me.id).toBe(first.me.id);
    expect(await h.core.db.user.count({ where: { username: 'github:101' } })).toBe(1);
  });

  it('refuses someone outside the organisation, and makes nothing', async () => {
    const before = await h.core.db.user.count();
    const r = await signIn('outsider');
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body).error.code).toBe('github_org_required');
    expect(r.me).toBeNull();
    expect(await h.core.db.user.count()).toBe(before);
  });

  it('an admin\'s invitation is claimed by the GitHub account with that verified email, even outside the organisation', async () => {
    gh.addUser({ id: 103, login: 'invitee', emails: [{ email: 'someone-else@example.com', primary: false, verified: true }, { email: 'invitee@example.com', primary: true, verified: true }], orgs: [] });
    const invited = await admin.api('/api/admin/users', { body: { email: 'invitee@example.com', displayName: 'Invited Person', role: 'member' } });
    expect(invited.status).toBe(201);
    const { id } = await invited.json();
    const r = await signIn('invitee');
    expect(r.status, r.body).toBe(302);
    expect(r.me).toMatchObject({ id, username: 'github:103', authSource: 'github', displayName: 'Invited Person' });
    // Later sign-ins too: the admin vouched for them.
    expect((await signIn('invitee')).me.id).toBe(id);
  });

  it('never links by a matching email alone: a password account or an unverified address stays apart', async () => {
    const local = await h.core.users.create({ email: 'carol@example.com', displayName: 'Carol', password: 'carol has a password' });
    gh.addUser({ id: 104, login: 'carol-gh', emails: [{ email: 'carol@example.com', primary: true, verified: true }], orgs: ['hangar-org'] });
    const carol = await signIn('carol-gh');
    expect(carol.status).toBe(302);
    expect(carol.me.id).not.toBe(local.id);
    expect(carol.me.email).toBeNull();
    expect((await h.core.users.get(local.id)).authSource).toBe('local');

    const pending = await h.core.users.create({ email: 'dan@example.com', displayName: 'Dan (invited)', invitedById: admin.id });
    gh.addUser({ id: 105, login: 'dan-unverified', emails: [{ email: 'dan@example.com', primary: true, verified: false }], orgs: ['hangar-org'] });
    const dan = await signIn('dan-unverified');
    expect(dan.me.id).not.toBe(pending.id);
    expect(dan.me.email).toBeNull();
    expect((await h.core.users.get(pending.id)).username).toBeNull();
  });

  it('refuses a forged state and a code GitHub does not know; no session either way', async () => {
    const forged = await signIn('octo-member', (u) => {
      const url = new URL(u);
      url.searchParams.set('state', 'forged-state');
      return url.href;
    });
    expect(forged.status).toBe(401);
    expect(JSON.parse(forged.body).error.code).toBe('github_failed');
    expect(forged.me).toBeNull();
    const badCode = await signIn('octo-member', (u) => {
      const url = new URL(u);
      url.searchParams.set('code', 'not-a-code');
      return url.href;
    });
    expect(badCode.status).toBe(401);
    expect(JSON.parse(badCode.body).error.message).toMatch(/incorrect or expired/);
    expect(badCode.me).toBeNull();
  });

  it('leaving the organisation ends access at the next sign-in; a suspended account is told so', async () => {
    gh.addUser({ id: 106, login: 'leaver', emails: [{ email: 'leaver@example.com', primary: true, verified: true }], orgs: ['hangar-org'] });
    const joined = await signIn('leaver');
    expect(joined.status).toBe(302);
    gh.addUser({ id: 106, login: 'leaver', emails: [{ email: 'leaver@example.com', primary: true, verified: true }], orgs: [] });
    const left = await signIn('leaver');
    expect(left.status).toBe(403);
    expect(JSON.parse(left.body).error.code).toBe('github_org_required');

    const member = (await h.core.users.findByLogin('github:101'))!;
    expect((await admin.api(`/api/admin/users/${member.id}/suspend`, { method: 'POST' })).status).toBe(200);
    const suspended = await signIn('octo-member');
    expect(suspended.status).toBe(403);
    expect(JSON.parse(suspended.body).error.code).toBe('account_suspended');
    expect((await admin.api(`/api/admin/users/${member.id}/reactivate`, { method: 'POST' })).status).toBe(200);
    expect((await signIn('octo-member')).status).toBe(302);
  });

  it('a settings change applies to the next sign-in without a restart, and removal turns it off', async () => {
    expect((await configure({ clientId: gh.client.id, clientSecret: 'a-stale-secret', allowedOrg: 'hangar-org' })).status).toBe(200);
    const stale = await signIn('octo-member');
    expect(stale.status).toBe(401);
    expect(JSON.parse(stale.body).error.message).toMatch(/incorrect/);
    // The secret may be left out when only the organisation changes: the stored one stays.
    expect((await configure(good())).status).toBe(200);
    expect((await configure({ clientId: gh.client.id, allowedOrg: 'other' })).status).toBe(200);
    expect((await signIn('outsider')).status).toBe(302);
    expect((await configure({ clientId: 'another-client', allowedOrg: 'other' })).status).toBe(400);
    const removed = await admin.api('/api/admin/auth/github', { method: 'DELETE' });
    expect(removed.status).toBe(204);
    expect((await fetch(`${h.url}/api/auth/github/login`, { redirect: 'manual' })).status).toBe(404);
    expect((await asSystem(h.core.db, (tx) => tx.auditLog.findMany({ where: { action: 'auth.github.remove' } }))).length).toBe(1);
  });
});
