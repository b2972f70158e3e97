import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';

// A real OpenID provider (oidc-provider) on loopback, with its development
// login pages, and a tiny "browser" that walks them with a cookie jar.

export async function startOidcProvider(opts: {
  redirectUri: string;
  idTokenTtlSec?: number;
  clientSecret?: string;
  /** Holds each token response this long after minting it (to deliver an already expired ID token). */
  tokenDelayMs?: number;
  /** The verified email the provider asserts for a subject (default `<sub>@example.com`). */
  emailOf?: (sub: string) => string;
}) {
  const server = http.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'hangar',
        client_secret: opts.clientSecret ?? 'hangar-client-secret',
        redirect_uris: [opts.redirectUri],
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
    ],
    pkce: { required: () => true },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    conformIdTokenClaims: false,
    ttl: { IdToken: opts.idTokenTtlSec ?? 3600 },
    findAccount: async (_ctx: unknown, sub: string) => ({
      accountId: sub,
      claims: async () => ({ sub, email: opts.emailOf?.(sub) ?? `${sub}@example.com`, email_verified: true, name: `User ${sub}` }),
    }),
  });
  provider.on('server_error', () => undefined);
  if (opts.tokenDelayMs) {
    provider.use(async (ctx: { path: string }, next: () => Promise<void>) => {
      await next();
      if (ctx.path === '/token') await new Promise((r) => setTimeout(r, opts.tokenDelayMs));
    });
  }
  server.on('request', provider.callback());
  return {
    issuer,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Follows redirects by hand, keeping cookies per origin, the way a browser would. */
export function browser() {
  const jars = new Map<string, Map<string, string>>();
  const jar = (url: URL) => {
    if (!jars.has(url.host)) jars.set(url.host, new Map());
    return jars.get(url.host)!;
  };
  async function request(url: string, init: { method?: string; form?: Record<string, string> } = {}) {
    const u = new URL(url);
    const cookies = [...jar(u).entries()].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(u, {
      method: init.method ?? 'GET',
      redirect: 'manual',
      headers: {
        ...(cookies ? { cookie: cookies } : {}),
        ...(init.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
      },
      body: init.form ? new URLSearchParams(init.form).toString() : undefined,
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      const [name, value] = [pair.slice(0, i), pair.slice(i + 1)];
      if (/expires=Thu, 01 Jan 1970/i.test(c) || value === '') jar(u).delete(name);
      else jar(u).set(name, value);
    }
    const location = res.headers.get('location');
    return { res, location: location ? new URL(location, u).href : null, body: await res.text() };
  }
  return {
    request,
    cookie: (origin: string, name: string) => jar(new URL(origin)).get(name),
    setCookie: (origin: string, name: string, value: string) => jar(new URL(origin)).set(name, value),
    /**
     * From Hangar's /api/auth/oidc/login through the provider's login and
     * consent pages, stopping at the redirect back to Hangar's callback.
     * `tamper` may rewrite the authorization URL before the browser follows it.
     */
    async signInAtProvider(hangarUrl: string, login: string, tamper: (authUrl: string) => string = (u) => u): Promise<string> {
      const start = await request(`${hangarUrl}/api/auth/oidc/login`);
      if (start.res.status !== 302 || !start.location) throw new Error(`login did not redirect: ${start.res.status} ${start.body}`);
      let next: string | null = tamper(start.location);
      for (let i = 0; i < 12 && next; i++) {
        if (next.startsWith(hangarUrl)) return next;
        const step = await request(next);
        if (step.location) {
          next = step.location;
          continue;
        }
        const uid = new URL(next).pathname.match(/\/interaction\/([^/]+)/)?.[1];
        if (!uid) throw new Error(`unexpected page at ${next}: ${step.res.status} ${step.body.slice(0, 300)}`);
        const prompt = step.body.includes('name="login"') ? 'login' : 'consent';
        const submit = await request(next, { method: 'POST', form: prompt === 'login' ? { prompt, login, password: 'any' } : { prompt } });
        next = submit.location;
      }
      throw new Error('sign-in at the provider did not come back to Hangar');
    },
  };
}
