import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import { createTestUser, freshDatabase, startHangar, type Hangar } from '../support/hangar.harness.ts';

// Attacks from the security review, each performed against the real stack:
// token scope games, a provider re-pointed to carry its key elsewhere,
// X-Forwarded-For spoofing, locking the admin out, and guessing the setup code.
describe('security review: the attacks fail', () => {
  let h: Hangar;
  let honest: Awaited<ReturnType<typeof startFakeOpenAI>>;
  let attacker: Awaited<ReturnType<typeof startFakeOpenAI>>;

  beforeAll(async () => {
    [honest, attacker] = await Promise.all([startFakeOpenAI(), startFakeOpenAI()]);
    // Behind one proxy at 127.0.0.1 (the test itself): X-Forwarded-For's last hop is the client.
    // Both upstreams are on this machine, so the egress allowlist names them.
    h = await startHangar({ HANGAR_TRUST_PROXY: '127.0.0.1', HANGAR_EGRESS_ALLOW: `host:${honest.port},host:${attacker.port}` }, { worker: false });
  });
  afterAll(async () => {
    await h?.stop();
    await honest?.close();
    await attacker?.close();
  });

  const as = (token: string, path: string, init: { method?: string; body?: unknown } = {}) =>
    fetch(`${h.url}${path}`, {
      method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
      headers: { authorization: `Bearer ${token}`, ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });

  it('a token never mints a wider token, and routes the scope table does not name need full access', async () => {
    const admin = await createTestUser(h, 'admin');
    const mint = async (token: string, scopes: string[]) => as(token, '/api/tokens', { body: { name: 'minted', scopes } });
    const tokensOnly = (await (await admin.api('/api/tokens', { body: { name: 't', scopes: ['tokens'] } })).json()).token as string;
    for (const wider of [['*'], ['admin'], ['tokens', 'agent']]) {
      const res = await mint(tokensOnly, wider);
      expect(res.status, JSON.stringify(wider)).toBe(403);
      expect((await res.json()).error.code).toBe('scope_not_allowed');
    }
    const before = (await (await admin.api('/api/tokens')).json()).length;
    expect((await mint(tokensOnly, ['tokens'])).status).toBe(201);
    expect((await (await admin.api('/api/tokens')).json()).length).toBe(before + 1);

    // Workspaces and onboarding are in no row of the table: a narrow token is refused, a full one is not.
    const agentOnly = (await (await admin.api('/api/tokens', { body: { name: 'a', scopes: ['agent'] } })).json()).token as string;
    for (const [path, body] of [['/api/workspaces', undefined], ['/api/onboarding/oidc', { skip: true }]] as const) {
      const res = await as(agentOnly, path, { body });
      expect(res.status, path).toBe(403);
      expect((await res.json()).error.code).toBe('insufficient_scope');
    }
    expect((await admin.api('/api/workspaces')).status).toBe(200);
  });

  it('re-pointing a provider drops its key, so a test can never carry it to the new URL', async () => {
    const member = await createTestUser(h);
    const created = await member.api('/api/me/providers', {
      body: { name: 'mine', displayName: 'Mine', type: 'custom', baseUrl: honest.agentBaseUrl, apiKey: 'sk-victim-secret-4242' },
    });
    expect(created.status).toBe(201);
    const { id } = await created.json();
    expect((await (await member.api(`/api/me/providers/${id}/test`, { method: 'POST' })).json()).ok).toBe(true);
    expect(honest.seen.at(-1)?.authorization).toBe('Bearer sk-victim-secret-4242');

    const moved = await member.api(`/api/me/providers/${id}`, { method: 'PATCH', body: { baseUrl: attacker.agentBaseUrl } });
    expect(moved.status).toBe(200);
    expect(await moved.json()).toMatchObject({ hasApiKey: false, apiKeyLast4: null });
    await member.api(`/api/me/providers/${id}/test`, { method: 'POST' });
    expect(attacker.seen.length).toBeGreaterThan(0);
    expect(attacker.seen.every((r) => !r.authorization)).toBe(true);

    // A type change is a re-point too; a rename is not.
    await member.api(`/api/me/providers/${id}`, { method: 'PATCH', body: { apiKey: 'sk-second-key-7777' } });
    expect((await (await member.api(`/api/me/providers/${id}`, { method: 'PATCH', body: { displayName: 'Renamed' } })).json()).hasApiKey).toBe(true);
    expect((await (await member.api(`/api/me/providers/${id}`, { method: 'PATCH', body: { type: 'openai', baseUrl: attacker.agentBaseUrl } })).json()).hasApiKey).toBe(false);
  });

  const login = (username: string, password: string, forwardedFor: string) =>
    fetch(`${h.url}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': forwardedFor },
      body: JSON.stringify({ username, password }),
    });

  it('failing as the admin from one address never locks the admin out from another', async () => {
    const username = `bg-${Date.now()}`;
    await h.core.users.create({ username, password: 'the admins own password', role: 'admin' });
    const statuses = [];
    for (let i = 0; i < 8; i++) statuses.push((await login(username, `guess number ${i}`, '203.0.113.9')).status);
    expect(statuses.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
    expect(statuses.slice(5)).toContain(429);
    // Even the right password waits, from the attacker's address.
    expect((await login(username, 'the admins own password', '203.0.113.9')).status).toBe(429);
    // The admin, elsewhere, signs in.
    expect((await login(username, 'the admins own password', '198.51.100.7')).status).toBe(200);
  });

  it('a spoofed leftmost X-Forwarded-For does not buy fresh attempts', async () => {
    const username = `spoof-${Date.now()}`;
    await h.core.users.create({ username, password: 'the right password here' });
    const statuses = [];
    // The client writes any leftmost value it likes; the proxy appends the address it saw.
    for (let i = 0; i < 8; i++) statuses.push((await login(username, 'wrong guess!!', `10.0.${i}.1, 203.0.113.77`)).status);
    expect(statuses).toContain(429);
  });

  it('guessing the setup code is throttled like a password', async () => {
    const db = await freshDatabase({ onboarded: false });
    const first = await startHangar({ DATABASE_URL: db.url }, { worker: false });
    try {
      const real = (await first.core.onboarding.setupCode())!;
      const guess = (code: string) =>
        fetch(`${first.url}/api/onboarding/breakglass`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ username: 'root', password: 'long enough password', setupCode: code }),
        });
      const statuses = [];
      for (let i = 0; i < 7; i++) statuses.push((await guess(`AAAA-BBBB-CCCC-${String(i).padStart(4, '2')}`)).status);
      expect(statuses.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
      expect(statuses.slice(5)).toContain(429);
      // Throttled means refused before the code is even looked at: the real one waits too.
      expect((await guess(real)).status).toBe(429);
      expect(await first.core.db.user.count()).toBe(0);
    } finally {
      await first.stop();
      await db.drop();
    }
  });
});
