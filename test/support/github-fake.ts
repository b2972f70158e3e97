import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

// A stand-in for GitHub on loopback, speaking what Hangar's GitHub sign-in
// uses: the OAuth web flow (/login/oauth/authorize, /login/oauth/access_token,
// with PKCE) and the REST API (/user, /user/emails, /user/orgs, /orgs/:org)
// under /api/v3, as GitHub Enterprise Server lays it out. Like GitHub, the
// token endpoint answers 200 with an `error` field when it refuses.

export interface FakeGithubUser {
  id: number;
  login: string;
  name?: string | null;
  emails?: Array<{ email: string; primary: boolean; verified: boolean }>;
  orgs?: string[];
}

export async function startFakeGithub(opts: { clientId?: string; clientSecret?: string } = {}) {
  const client = { id: opts.clientId ?? 'gh-client-id', secret: opts.clientSecret ?? 'gh-client-secret' };
  const users = new Map<string, FakeGithubUser>();
  const orgs = new Set<string>();
  const codes = new Map<string, { login: string; redirectUri: string; challenge: string | null }>();
  const tokens = new Map<string, string>();
  /** Every token exchange as GitHub received it (tests check PKCE and credentials went along). */
  const exchanges: Array<Record<string, string>> = [];
  let actingAs: string | null = null;

  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify(body));
  };
  const readBody = async (req: http.IncomingMessage) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    return (req.headers['content-type'] ?? '').includes('json') ? (JSON.parse(text || '{}') as Record<string, string>) : Object.fromEntries(new URLSearchParams(text));
  };

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://fake');
    const path = url.pathname;
    if (req.method === 'GET' && path === '/login/oauth/authorize') {
      // The person at GitHub approves the app: whoever the test says is signed in there.
      if (url.searchParams.get('client_id') !== client.id) return json(res, 404, { message: 'unknown client' });
      if (!actingAs || !users.has(actingAs)) return json(res, 401, { message: 'nobody is signed in at the fake GitHub' });
      const redirectUri = url.searchParams.get('redirect_uri') ?? '';
      const code = randomBytes(10).toString('hex');
      codes.set(code, { login: actingAs, redirectUri, challenge: url.searchParams.get('code_challenge') });
      const back = new URL(redirectUri);
      back.searchParams.set('code', code);
      back.searchParams.set('state', url.searchParams.get('state') ?? '');
      res.writeHead(302, { location: back.href });
      return res.end();
    }
    if (req.method === 'POST' && path === '/login/oauth/access_token') {
      const form = await readBody(req);
      exchanges.push(form);
      if (form.client_id !== client.id || form.client_secret !== client.secret) return json(res, 200, { error: 'incorrect_client_credentials', error_description: 'The client_id and/or client_secret passed are incorrect.' });
      const grant = codes.get(form.code ?? '');
      codes.delete(form.code ?? '');
      if (!grant) return json(res, 200, { error: 'bad_verification_code', error_description: 'The code passed is incorrect or expired.' });
      if (form.redirect_uri && form.redirect_uri !== grant.redirectUri) return json(res, 200, { error: 'redirect_uri_mismatch' });
      if (grant.challenge && createHash('sha256').update(form.code_verifier ?? '').digest('base64url') !== grant.challenge) {
        return json(res, 200, { error: 'bad_verification_code', error_description: 'PKCE verification failed.' });
      }
      const token = `gho_${randomBytes(16).toString('hex')}`;
      tokens.set(token, grant.login);
      return json(res, 200, { access_token: token, token_type: 'bearer', scope: 'read:user,user:email,read:org' });
    }
    if (req.method === 'GET' && path.startsWith('/api/v3/')) {
      const api = path.slice('/api/v3'.length);
      const org = /^\/orgs\/([^/]+)$/.exec(api);
      if (org) return orgs.has(decodeURIComponent(org[1]).toLowerCase()) ? json(res, 200, { login: decodeURIComponent(org[1]) }) : json(res, 404, { message: 'Not Found' });
      const login = tokens.get((req.headers.authorization ?? '').replace(/^Bearer /, ''));
      const user = login ? users.get(login) : undefined;
      if (!user) return json(res, 401, { message: 'Bad credentials' });
      if (api === '/user') return json(res, 200, { id: user.id, login: user.login, name: user.name ?? null, email: null });
      if (api === '/user/emails') return json(res, 200, (user.emails ?? []).map((e) => ({ ...e, visibility: null })));
      if (api === '/user/orgs') {
        const per = Number(url.searchParams.get('per_page') ?? 30);
        const page = Number(url.searchParams.get('page') ?? 1);
        return json(res, 200, (user.orgs ?? []).slice((page - 1) * per, page * per).map((o, i) => ({ login: o, id: 1000 + i })));
      }
    }
    json(res, 404, { message: 'Not Found' });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    /** HANGAR_GITHUB_OAUTH_URL and HANGAR_GITHUB_API_URL for a Hangar that signs in here. */
    oauthUrl: origin,
    apiUrl: `${origin}/api/v3`,
    client,
    exchanges,
    addUser(u: FakeGithubUser) {
      users.set(u.login, u);
      for (const o of u.orgs ?? []) orgs.add(o.toLowerCase());
    },
    addOrg(name: string) {
      orgs.add(name.toLowerCase());
    },
    /** Who is signed in at GitHub (approves the next authorization). */
    signInAs(login: string | null) {
      actingAs = login;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
