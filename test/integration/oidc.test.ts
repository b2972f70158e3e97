import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SETTING_KEYS } from '../../core/services/settings.service.ts';
import { hashPassword } from '../../core/services/passwords.service.ts';
import { freshDatabase, startHangar, type Hangar } from '../support/hangar.harness.ts';
import { browser, startOidcProvider } from '../support/oidc-provider.ts';

// Sign-in with a real OpenID provider on loopback, and the ways it must fail.
describe('OIDC sign-in', () => {
  let h: Hangar;
  let idp: Awaited<ReturnType<typeof startOidcProvider>>;
  let foreign: Awaited<ReturnType<typeof startOidcProvider>>;

  let db: Awaited<ReturnType<typeof freshDatabase>>;

  beforeAll(async () => {
    // A database of its own: it makes the instance's one breakglass admin.
    db = await freshDatabase();
    h = await startHangar({ DATABASE_URL: db.url }, { worker: false });
    const redirectUri = `${h.url}/api/auth/oidc/callback`;
    [idp, foreign] = await Promise.all([startOidcProvider({ redirectUri }), startOidcProvider({ redirectUri })]);
  });
  afterAll(async () => {
    await h?.stop();
    await idp?.close();
    await foreign?.close();
    await db?.drop();
  });

  async function configure(issuer: string, secret = 'hangar-client-secret') {
    await h.core.settings.saveOidc({ issuer, clientId: 'hangar', clientSecretEnc: h.core.keyring.encrypt(secret) });
  }

  it('answers 404 oidc_not_configured until configured', async () => {
    await h.core.db.systemConfig.deleteMany({ where: { key: { in: [SETTING_KEYS.oidcIssuer, SETTING_KEYS.oidcClientId, SETTING_KEYS.oidcClientSecret] } } });
    const res = await fetch(`${h.url}/api/auth/oidc/login`, { redirect: 'manual' });
    expect(res.status).toBe(404);
    expect((await res.json()).error.code).toBe('oidc_not_configured');
  });

  it('signs a user in end to end, creating them once (settings apply without a restart)', async () => {
    await configure(idp.issuer);
    const b = browser();
    const callback = await b.signInAtProvider(h.url, 'alice');
    const back = await b.request(callback);
    expect(back.res.status, back.body).toBe(302);
    expect(new URL(back.location!).pathname).toBe('/');
    const session = b.cookie(h.url, 'hangar_session');
    expect(session).toBeTruthy();
    const me = await (await fetch(`${h.url}/api/auth/me`, { headers: { cookie: `hangar_session=${session}` } })).json();
    expect(me.user).toMatchObject({ email: 'alice@example.com', authSource: 'oidc', role: 'member', displayName: 'User alice' });

    const again = browser();
    await again.request(await again.signInAtProvider(h.url, 'alice'));
    const me2 = await (await fetch(`${h.url}/api/auth/me`, { headers: { cookie: `hangar_session=${again.cookie(h.url, 'hangar_session')}` } })).json();
    expect(me2.user.id).toBe(me.user.id);
  });

  it('an invited user (no password) is claimed by their first verified sign-in; a password account is not', async () => {
    await configure(idp.issuer);
    const invited = await h.core.users.create({ email: 'bob@example.com', displayName: 'Bob (invited)' });
    const local = await h.core.users.create({ email: 'carol@example.com', password: 'carol has a password' });
    const asBob = browser();
    await asBob.request(await asBob.signInAtProvider(h.url, 'bob'));
    const me = await (await fetch(`${h.url}/api/auth/me`, { headers: { cookie: `hangar_session=${asBob.cookie(h.url, 'hangar_session')}` } })).json();
    expect(me.user.id).toBe(invited.id);
    const asCarol = browser();
    await asCarol.request(await asCarol.signInAtProvider(h.url, 'carol'));
    const carol = await (await fetch(`${h.url}/api/auth/me`, { headers: { cookie: `hangar_session=${asCarol.cookie(h.url, 'hangar_session')}` } })).json();
    expect(carol.user.id).not.toBe(local.id);
    expect(carol.user.email).toBeNull();
  });

  it('never re-links an already linked account to a second subject with the same verified email', async () => {
    // The attack: an identity the issuer also vouches for with dave's email
    // (another account at the IdP, a recycled address) signs in under its own
    // subject. Only dave's never-linked invitation may be claimed, once.
    const twin = await startOidcProvider({
      redirectUri: `${h.url}/api/auth/oidc/callback`,
      emailOf: (sub) => (sub === 'dave-twin' ? 'dave@example.com' : `${sub}@example.com`),
    });
    try {
      await configure(twin.issuer);
      const invited = await h.core.users.create({ email: 'dave@example.com', displayName: 'Dave (invited)' });
      const meAs = async (login: string) => {
        const b = browser();
        await b.request(await b.signInAtProvider(h.url, login));
        const res = await fetch(`${h.url}/api/auth/me`, { headers: { cookie: `hangar_session=${b.cookie(h.url, 'hangar_session')}` } });
        return (await res.json()).user as { id: string; email: string | null; username: string };
      };
      const dave = await meAs('dave');
      expect(dave.id).toBe(invited.id);
      expect(dave.username).toBe('oidc:dave');

      const twinUser = await meAs('dave-twin');
      expect(twinUser.id).not.toBe(invited.id);
      expect(twinUser.email).toBeNull();
      // Dave's account still belongs to dave's subject, and dave still gets it.
      expect((await h.core.users.get(invited.id)).username).toBe('oidc:dave');
      expect((await meAs('dave')).id).toBe(invited.id);
    } finally {
      await twin.close();
    }
  });

  it('refuses a tampered state, a wrong nonce and a foreign issuer\'s code', async () => {
    await configure(idp.issuer);
    const before = await h.core.db.user.count();

    const tamperedState = browser();
    const cb = new URL(await tamperedState.signInAtProvider(h.url, 'mallory'));
    cb.searchParams.set('state', 'forged-state');
    const r1 = await tamperedState.request(cb.href);
    expect(r1.res.status).toBe(401);
    expect(JSON.parse(r1.body).error.code).toBe('oidc_failed');
    expect(tamperedState.cookie(h.url, 'hangar_session')).toBeUndefined();

    const wrongNonce = browser();
    const cb2 = await wrongNonce.signInAtProvider(h.url, 'mallory', (u) => {
      const url = new URL(u);
      url.searchParams.set('nonce', 'attacker-nonce');
      return url.href;
    });
    const r2 = await wrongNonce.request(cb2);
    expect(r2.res.status).toBe(401);
    expect(JSON.parse(r2.body).error.message).toContain('JWT_CLAIM_COMPARISON');
    expect(wrongNonce.cookie(h.url, 'hangar_session')).toBeUndefined();

    const wrongIssuer = browser();
    const cb3 = await wrongIssuer.signInAtProvider(h.url, 'mallory', (u) => u.replace(idp.issuer, foreign.issuer));
    const r3 = await wrongIssuer.request(cb3);
    expect(r3.res.status).toBe(401);
    expect(JSON.parse(r3.body).error.code).toBe('oidc_failed');
    expect(wrongIssuer.cookie(h.url, 'hangar_session')).toBeUndefined();

    const forgedCookie = browser();
    const cb4 = await forgedCookie.signInAtProvider(h.url, 'mallory');
    const signed = decodeURIComponent(forgedCookie.cookie(h.url, 'hangar_oidc')!);
    const [, sig] = [signed.slice(0, signed.lastIndexOf('.')), signed.slice(signed.lastIndexOf('.') + 1)];
    forgedCookie.setCookie(h.url, 'hangar_oidc', encodeURIComponent(`{"state":"x","nonce":"y","codeVerifier":"z","issuer":"${idp.issuer}"}.${sig}`));
    expect((await forgedCookie.request(cb4)).res.status).toBe(401);

    expect(await h.core.db.user.count()).toBe(before);
  });

  it('refuses an ID token that has expired by the time it arrives', async () => {
    const slow = await startOidcProvider({ redirectUri: `${h.url}/api/auth/oidc/callback`, idTokenTtlSec: 1, tokenDelayMs: 7000 });
    try {
      await configure(slow.issuer);
      const b = browser();
      const res = await b.request(await b.signInAtProvider(h.url, 'late'));
      expect(res.res.status).toBe(401);
      expect(JSON.parse(res.body).error.message).toMatch(/exp|timestamp|JWT/i);
      expect(b.cookie(h.url, 'hangar_session')).toBeUndefined();
    } finally {
      await slow.close();
    }
  });

  it('with the issuer unreachable, OIDC says 503 and breakglass sign-in still works', async () => {
    await configure('http://127.0.0.1:9');
    const res = await fetch(`${h.url}/api/auth/oidc/login`, { redirect: 'manual' });
    expect(res.status).toBe(503);
    expect((await res.json()).error.code).toBe('oidc_unavailable');
    const username = `bg-${Date.now()}`;
    await h.core.breakglass.create({ username, passwordHash: await hashPassword('breakglass password!'), setupCodeHash: null });
    const login = await fetch(`${h.url}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, password: 'breakglass password!' }),
    });
    expect(login.status).toBe(200);
  });
});
