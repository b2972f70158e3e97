import oauth2Plugin, { fastifyOauth2, type OAuth2Namespace } from '@fastify/oauth2';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { HangarConfig } from '../core/config.ts';
import { NotFoundError, UnauthorizedError, UnavailableError } from '../core/errors.ts';
import type { GithubSettings, SettingsService } from '../core/services/settings.service.ts';

// GitHub sign-in's OAuth 2 dance with @fastify/oauth2 and its GitHub preset:
// the state cookie, PKCE (S256) and the code exchange are the plugin's.
//
// Applied without a restart: the plugin takes its client id and secret when
// it is registered (it builds one simple-oauth2 client then), and Fastify
// allows no registration once the server listens. So the plugin is
// registered on a small Fastify instance of its own per settings version,
// built on the first sign-in after a change and kept until the next change;
// its decorations are called with the real request and reply (the cookies are
// the main app's, signed with its key). Settings are read per sign-in (one
// small query), so a save, a change or a removal applies to the next one.

export const GITHUB_COOKIE_PATH = '/api/auth/github';

export interface GithubOAuth {
  settings: GithubSettings;
  oauth: OAuth2Namespace;
}

export function createGithubOAuth(opts: { settings: SettingsService; config: Pick<HangarConfig, 'githubOauthUrl' | 'publicUrl' | 'port'>; secureCookies: boolean }) {
  const base = (opts.config.publicUrl ?? `http://localhost:${opts.config.port}`).replace(/\/$/, '');
  const oauthHost = opts.config.githubOauthUrl.replace(/\/$/, '');
  let current: { key: string; instance: Promise<FastifyInstance> } | null = null;

  async function build(s: GithubSettings): Promise<FastifyInstance> {
    // simple-oauth2 (under the plugin) checks the credentials inside a
    // callback, where a refusal is an uncaught exception, not a rejection:
    // its rule is checked here first. The settings API allows no other.
    if (![s.clientId, s.clientSecret].every((v) => /^[\x20-\x7E]+$/.test(v))) {
      throw new UnavailableError('The stored GitHub client id or secret is not printable ASCII: set them again on the sign-in settings page', 'github_misconfigured');
    }
    const holder = Fastify({ logger: false });
    await holder.register(oauth2Plugin, {
      name: 'github',
      scope: ['read:user', 'user:email', 'read:org'],
      credentials: {
        client: { id: s.clientId, secret: s.clientSecret },
        auth: { ...fastifyOauth2.GITHUB_CONFIGURATION, tokenHost: oauthHost },
        // GitHub documents the credentials as form fields of the token request.
        options: { authorizationMethod: 'body' },
      },
      callbackUri: `${base}${GITHUB_COOKIE_PATH}/callback`,
      pkce: 'S256',
      userAgent: 'Hangar',
      redirectStateCookieName: 'hangar_github_state',
      verifierCookieName: 'hangar_github_verifier',
      // Signed with the app's cookie key, short-lived, sent only to the callback.
      cookie: { path: GITHUB_COOKIE_PATH, httpOnly: true, sameSite: 'lax', secure: opts.secureCookies, signed: true, maxAge: 600 },
    });
    await holder.ready();
    return holder;
  }

  async function client(): Promise<GithubOAuth> {
    const s = await opts.settings.github();
    if (!s) throw new NotFoundError('GitHub sign-in configuration', 'github_not_configured');
    const key = `${s.clientId}\u0000${s.clientSecret}`;
    if (current?.key !== key) {
      const old = current;
      current = { key, instance: build(s) };
      current.instance.catch(() => (current = null));
      void old?.instance.then((i) => i.close()).catch(() => undefined);
    }
    const instance = await current.instance;
    return { settings: s, oauth: (instance as unknown as { github: OAuth2Namespace }).github };
  }

  return {
    /** The authorization URL; sets the state and verifier cookies on the reply. */
    async begin(request: FastifyRequest, reply: FastifyReply): Promise<string> {
      const { oauth } = await client();
      return oauth.generateAuthorizationUri(request, reply);
    },

    /** Checks the state, exchanges the code (with the PKCE verifier) and clears the cookies: the access token and the settings it was made under. */
    async finish(request: FastifyRequest, reply: FastifyReply): Promise<{ accessToken: string; settings: GithubSettings }> {
      const { oauth, settings } = await client();
      let token;
      try {
        token = await oauth.getAccessTokenFromAuthorizationCodeFlow(request, reply);
      } catch (err) {
        throw new UnauthorizedError(`GitHub sign-in refused: ${(err as Error).message}`, 'github_failed');
      }
      // GitHub answers a refused exchange with 200 and an `error` field.
      const t = token.token as unknown as { access_token?: string; error?: string; error_description?: string };
      if (!t.access_token) throw new UnauthorizedError(`GitHub sign-in refused: ${t.error_description ?? t.error ?? 'no access token'}`, 'github_failed');
      return { accessToken: t.access_token, settings };
    },

    async close(): Promise<void> {
      const c = current;
      current = null;
      await c?.instance.then((i) => i.close()).catch(() => undefined);
    },
  };
}

export type GithubOAuthClient = ReturnType<typeof createGithubOAuth>;
