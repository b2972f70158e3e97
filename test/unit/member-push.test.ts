import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemberPushActivities } from '../../activities/member-push.activities.ts';
import { diffMembers, provisionBackoffMs, type AgentMember } from '../../core/contracts/workspace.contract.ts';
import { emailHint } from '../../core/services/invites.service.ts';
import { speakerHeaders } from '../../api/speaker-identity.ts';

// The member push against a small stand-in for the agent's /internal/members
// (the reference agent's contract), and the pure pieces around it.

const m = (userId: string, role: AgentMember['role'] = 'member'): AgentMember => ({ userId, email: `${userId}@x.test`, displayName: userId.toUpperCase(), role });

describe('diffMembers', () => {
  it('puts the missing and the changed, removes the extra, leaves the same alone', () => {
    const d = diffMembers([m('a', 'owner'), m('b'), m('c', 'viewer')], [m('a', 'owner'), m('b', 'admin'), m('x')]);
    expect(d.put.map((p) => p.userId)).toEqual(['b', 'c']);
    expect(d).toMatchObject({ added: ['c'], changed: ['b'], remove: ['x'] });
    expect(diffMembers([m('a')], [m('a')])).toEqual({ put: [], remove: [], added: [], changed: [] });
  });

  it('backs off 5 s, doubling, to at most 5 minutes', () => {
    expect([1, 2, 3, 4, 10, 100].map(provisionBackoffMs)).toEqual([5000, 10_000, 20_000, 40_000, 300_000, 300_000]);
  });
});

describe('pushAgentMembers', () => {
  const TOKEN = 'gateway-token-for-the-test-0001';
  let list = new Map<string, AgentMember>();
  let mode: 'ok' | 'missing' | 'html' | 'unauthorized' = 'ok';
  const calls: string[] = [];
  let server: http.Server;
  let port: number;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      calls.push(`${req.method} ${req.url}`);
      if (req.headers.authorization !== `Bearer ${TOKEN}` || mode === 'unauthorized') return void res.writeHead(401).end();
      if (mode === 'missing') return void res.writeHead(404).end();
      if (mode === 'html') return void res.writeHead(200, { 'content-type': 'text/html' }).end('<html>control ui</html>');
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const id = decodeURIComponent((req.url ?? '').replace('/internal/members/', ''));
        if (req.method === 'GET') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ members: [...list.values()] }));
        if (req.method === 'PUT') list.set(id, { userId: id, ...JSON.parse(body) });
        if (req.method === 'DELETE') list.delete(id);
        res.writeHead(req.method === 'DELETE' ? 204 : 200, { 'content-type': 'application/json' }).end(req.method === 'DELETE' ? undefined : '{}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  // The "sealed" token is opened by the keyring; here the identity.
  const push = createMemberPushActivities({ keyring: { decrypt: (s: string) => s }, timeoutMs: 2000 }).pushAgentMembers;

  it('makes a drifted list equal to the database, touching only what differs', async () => {
    mode = 'ok';
    list = new Map([['a', m('a', 'owner')], ['b', m('b', 'viewer')], ['ghost', m('ghost', 'owner')]]);
    calls.length = 0;
    const r = await push({ port, sealedToken: TOKEN, members: [m('a', 'owner'), m('b'), m('c')] });
    expect(r).toMatchObject({ supported: true, added: ['c'], changed: ['b'], removed: ['ghost'] });
    expect([...list.values()].map((x) => `${x.userId}:${x.role}`).sort()).toEqual(['a:owner', 'b:member', 'c:member']);
    expect(calls).toEqual(['GET /internal/members', 'PUT /internal/members/b', 'PUT /internal/members/c', 'DELETE /internal/members/ghost', 'GET /internal/members']);
    // Again: nothing to do but look.
    calls.length = 0;
    await push({ port, sealedToken: TOKEN, members: [m('a', 'owner'), m('b'), m('c')] });
    expect(calls).toEqual(['GET /internal/members', 'GET /internal/members']);
  });

  it('reports a runtime without the endpoint as unsupported, and a refused token as a failure to retry', async () => {
    for (const missing of ['missing', 'html'] as const) {
      mode = missing;
      expect((await push({ port, sealedToken: TOKEN, members: [m('a')] })).supported).toBe(false);
    }
    mode = 'unauthorized';
    await expect(push({ port, sealedToken: TOKEN, members: [m('a')] })).rejects.toThrow(/HTTP 401/);
  });
});

describe('speaker identity and invitation hints', () => {
  it('builds the identity headers from the user alone, encoded, with the role only for a workspace agent', () => {
    const user = { id: 'u1', displayName: 'Zoë "Z" O\'Neil', email: 'zoe+team@example.test' };
    expect(speakerHeaders(user, 'viewer')).toEqual({
      'x-hangar-user-id': 'u1',
      'x-hangar-user-name': encodeURIComponent(user.displayName),
      'x-hangar-user-email': 'zoe%2Bteam%40example.test',
      'x-hangar-user-role': 'viewer',
    });
    expect(speakerHeaders({ ...user, email: null }, null)).toEqual({ 'x-hangar-user-id': 'u1', 'x-hangar-user-name': encodeURIComponent(user.displayName) });
  });

  it('shows admins a masked address', () => {
    expect(emailHint(' Carol.Smith@Example.TEST ')).toBe('c•••@example.test');
  });
});
