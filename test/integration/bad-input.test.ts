import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asSystem } from '../../core/db.ts';
import { createTestUser, startHangar, type Hangar, type TestUser } from '../support/hangar.harness.ts';

// Bad input to every route of the "Agents run" issue: a 4xx JSON error with a
// code and a message, never a 5xx, and nothing written.
describe('bad input', () => {
  let h: Hangar;
  let user: TestUser;
  let providerId: string;

  beforeAll(async () => {
    h = await startHangar();
    user = await createTestUser(h);
    const res = await user.api('/api/me/providers', {
      body: { name: 'mine', displayName: 'Mine', type: 'openai', apiKey: 'sk-abcdefgh' },
    });
    providerId = (await res.json()).id;
  });
  afterAll(async () => h?.stop());

  const snapshot = async () => {
    const db = h.core.db;
    // Read as system work: this checks everything, whoever it belongs to.
    const [providers, configs, tokens, agents, sessions] = await asSystem(db, async (tx) => [
      await tx.llmProvider.findMany({ orderBy: { id: 'asc' } }),
      await tx.agentConfig.findMany({ orderBy: { id: 'asc' } }),
      await tx.apiToken.count({ where: { userId: user.id } }),
      await tx.agent.count({ where: { ownerId: user.id } }),
      await tx.session.count(),
    ]);
    const users = await db.user.count();
    return JSON.stringify({ providers, tokens, agents, configs, users, sessions });
  };

  type Case = [name: string, method: string, path: string, body?: unknown, headers?: Record<string, string>];
  const long = 'x'.repeat(5000);
  const cases = (): Case[] => [
    ['login: missing password', 'POST', '/api/auth/login', { username: 'a' }],
    ['login: extra field', 'POST', '/api/auth/login', { username: 'a', password: 'b', admin: true }],
    ['login: wrong types', 'POST', '/api/auth/login', { username: 1, password: ['x'] }],
    ['login: not JSON', 'POST', '/api/auth/login', '{"username":', { 'content-type': 'application/json' }],
    ['login: SQL injection', 'POST', '/api/auth/login', { username: "' OR 1=1 --", password: "' OR '1'='1" }],
    ['token: empty name', 'POST', '/api/tokens', { name: '' }],
    ['token: control chars', 'POST', '/api/tokens', { name: 'a\u0000b' }],
    ['token: negative expiry', 'POST', '/api/tokens', { name: 'x', expiresInDays: -1 }],
    ['token: expiry as string', 'POST', '/api/tokens', { name: 'x', expiresInDays: '5' }],
    ['token: delete bad id', 'DELETE', '/api/tokens/..%2F..%2Fetc'],
    ['token: delete unknown', 'DELETE', '/api/tokens/nope'],
    ['provider: missing type', 'POST', '/api/me/providers', { name: 'p2', displayName: 'P' }],
    ['provider: unknown type', 'POST', '/api/me/providers', { name: 'p2', displayName: 'P', type: 'skynet' }],
    ['provider: bad name', 'POST', '/api/me/providers', { name: 'Bad Name!', displayName: 'P', type: 'openai' }],
    ['provider: unicode name', 'POST', '/api/me/providers', { name: 'prövider\u202e', displayName: 'P', type: 'openai' }],
    ['provider: custom without url', 'POST', '/api/me/providers', { name: 'p3', displayName: 'P', type: 'custom' }],
    ['provider: javascript url', 'POST', '/api/me/providers', { name: 'p3', displayName: 'P', type: 'custom', baseUrl: 'javascript:alert(1)' }],
    ['provider: header injection key', 'POST', '/api/me/providers', { name: 'p4', displayName: 'P', type: 'openai', apiKey: 'sk\r\nx-evil: 1' }],
    ['provider: extra field', 'POST', '/api/me/providers', { name: 'p5', displayName: 'P', type: 'openai', userId: 'someone' }],
    ['provider: duplicate name', 'POST', '/api/me/providers', { name: 'mine', displayName: 'Again', type: 'openai' }],
    ['provider: oversized display name', 'POST', '/api/me/providers', { name: 'p6', displayName: long, type: 'openai' }],
    ['provider: empty patch', 'PATCH', `/api/me/providers/${providerId}`, {}],
    ['provider: patch wrong type', 'PATCH', `/api/me/providers/${providerId}`, { models: 'all' }],
    ['provider: patch unknown id', 'PATCH', '/api/me/providers/unknown', { displayName: 'x' }],
    ['provider: delete unknown', 'DELETE', '/api/me/providers/unknown'],
    ['provider: test unknown', 'POST', '/api/me/providers/unknown/test'],
    ['config: missing fields', 'PUT', '/api/me/agent-config', { primaryModel: 'x' }],
    ['config: foreign provider', 'PUT', '/api/me/agent-config', { primaryModel: null, fallbackModels: [], personality: null, providerId: 'nope' }],
    ['config: too many fallbacks', 'PUT', '/api/me/agent-config', { primaryModel: null, fallbackModels: Array(11).fill('m'), personality: null, providerId: null }],
    ['agent: before first start', 'GET', '/api/me/agent'],
    ['agent: stop before first start', 'POST', '/api/me/agent/stop'],
    ['agent: idle timeout zero', 'PATCH', '/api/me/agent', { idleTimeoutMin: 0 }],
    ['agent: idle timeout too big', 'PATCH', '/api/me/agent', { idleTimeoutMin: 1441 }],
    ['agent: idle timeout float', 'PATCH', '/api/me/agent', { idleTimeoutMin: 1.5 }],
    ['chat: no messages', 'POST', '/api/chat', { messages: [] }],
    ['chat: bad role', 'POST', '/api/chat', { messages: [{ role: 'root', content: 'x' }] }],
    ['chat: stream as string', 'POST', '/api/chat', { messages: [{ role: 'user', content: 'x' }], stream: 'yes' }],
    ['chat: extra field', 'POST', '/api/chat', { messages: [{ role: 'user', content: 'x' }], temperature: 2 }],
    ['chat: foreign agent', 'POST', '/api/chat', { messages: [{ role: 'user', content: 'x' }], agentId: 'someone-else' }],
    ['chat: oversized', 'POST', '/api/chat', { messages: [{ role: 'user', content: 'x'.repeat(5 * 1024 * 1024) }] }],
    ['internal: bad kind', 'GET', '/api/internal/agent-config/robot/abc'],
    ['internal: no token', 'GET', '/api/internal/agent-config/user/abc'],
    ['unknown route', 'GET', '/api/nope'],
    ['token: unknown scope', 'POST', '/api/tokens', { name: 'x', scopes: ['root'] }],
    ['token: admin scope for a member', 'POST', '/api/tokens', { name: 'x', scopes: ['admin'] }],
    ['login: header injection', 'POST', '/api/auth/login', { username: 'a\r\nSet-Cookie: x=1', password: 'whatever' }],
    ['admin: list as a member', 'GET', '/api/admin/users'],
    ['admin: create as a member', 'POST', '/api/admin/users', { email: 'x@example.com', displayName: 'X', role: 'admin' }],
    ['admin: deactivate as a member', 'POST', `/api/admin/users/${user.id}/deactivate`],
    ['oidc: callback without a login', 'GET', '/api/auth/oidc/callback?code=abc&state=def'],
    ['onboarding: breakglass after completion', 'POST', '/api/onboarding/breakglass', { username: 'late-admin', password: 'a long enough password' }],
    ['onboarding: oidc as a member', 'POST', '/api/onboarding/oidc', { skip: true }],
    ['onboarding: complete again', 'POST', '/api/onboarding/complete'],
  ];

  it('answers every case with a 4xx JSON error and changes nothing', async () => {
    const before = await snapshot();
    const failures: string[] = [];
    for (const [name, method, path, body, headers] of cases()) {
      const res = await user.api(path, { method, body, headers });
      const text = await res.text();
      let json: { error?: { code?: string; message?: string } } | null = null;
      try {
        json = JSON.parse(text);
      } catch {
        /* reported below */
      }
      if (res.status < 400 || res.status >= 500 || !json?.error?.code || !json.error.message) {
        failures.push(`${name}: ${res.status} ${text.slice(0, 200)}`);
      }
    }
    expect(failures).toEqual([]);
    expect(await snapshot()).toBe(before);
  });

  it('refuses unauthenticated and forged callers', async () => {
    const noAuth = await fetch(`${h.url}/api/me/providers`);
    expect(noAuth.status).toBe(401);
    const forged = await fetch(`${h.url}/api/me/providers`, { headers: { authorization: 'Bearer hgr_forged_token' } });
    expect(forged.status).toBe(401);
    const login = await fetch(`${h.url}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'nobody', password: 'wrong' }),
    });
    expect(login.status).toBe(401);
    expect((await login.json()).error.code).toBe('invalid_credentials');
  });

  it('cookie sessions: login, CSRF on writes, logout', async () => {
    const username = `c-${Date.now()}`;
    await h.core.users.create({ username, password: 'a password long enough' });
    const login = await fetch(`${h.url}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, password: 'a password long enough' }),
    });
    expect(login.status).toBe(200);
    const cookie = login.headers.get('set-cookie')!;
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Lax/i);
    const jar = cookie.split(';')[0];
    const me = await (await fetch(`${h.url}/api/auth/me`, { headers: { cookie: jar } })).json();
    expect(me.user.username).toBe(username);
    const noCsrf = await fetch(`${h.url}/api/tokens`, {
      method: 'POST',
      headers: { cookie: jar, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'x' }),
    });
    expect(noCsrf.status).toBe(403);
    const withCsrf = await fetch(`${h.url}/api/tokens`, {
      method: 'POST',
      headers: { cookie: jar, 'content-type': 'application/json', 'x-hangar-csrf': me.csrfToken },
      body: JSON.stringify({ name: 'x' }),
    });
    expect(withCsrf.status).toBe(201);
    const { token, id } = await withCsrf.json();
    expect((await fetch(`${h.url}/api/tokens`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    const del = await fetch(`${h.url}/api/tokens/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
    expect(del.status).toBe(204);
    expect((await fetch(`${h.url}/api/tokens`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
    await fetch(`${h.url}/api/auth/logout`, { method: 'POST', headers: { cookie: jar } });
    expect((await fetch(`${h.url}/api/auth/me`, { headers: { cookie: jar } })).status).toBe(401);
  });
});
