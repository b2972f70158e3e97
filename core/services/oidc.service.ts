import * as client from 'openid-client';
import type { Db, User } from '../db.ts';
import { ForbiddenError, NotFoundError, UnauthorizedError, UnavailableError } from '../errors.ts';
import type { SettingsService } from './settings.service.ts';

// OIDC sign-in: authorization code with PKCE, state and nonce, the ID token
// verified against the issuer's JWKS (openid-client). Settings are read from
// the database on each sign-in, so a change applies without a restart.

export interface OidcLoginState {
  state: string;
  nonce: string;
  codeVerifier: string;
  /** Which settings started this login: a change in between refuses the callback. */
  issuer: string;
}

const DISCOVERY_TTL_MS = 5 * 60_000;

export function createOidcService({ db, settings, clockToleranceSec = 5 }: { db: Db; settings: SettingsService; clockToleranceSec?: number }) {
  let cached: { key: string; at: number; config: client.Configuration } | null = null;

  async function configuration(): Promise<client.Configuration> {
    const s = await settings.oidc();
    if (!s) throw new NotFoundError('OIDC configuration', 'oidc_not_configured');
    const key = `${s.issuer}|${s.clientId}|${s.clientSecret}`;
    if (cached && cached.key === key && Date.now() - cached.at < DISCOVERY_TTL_MS) return cached.config;
    const options = s.issuer.startsWith('http://') ? { execute: [client.allowInsecureRequests] } : undefined;
    const metadata = { [client.clockTolerance]: clockToleranceSec } as Partial<client.ClientMetadata>;
    let config: client.Configuration;
    try {
      config = await client.discovery(new URL(s.issuer), s.clientId, metadata, client.ClientSecretBasic(s.clientSecret), {
        ...options,
        timeout: 10,
      });
    } catch (err) {
      throw new UnavailableError(`The OIDC issuer is unreachable: ${(err as Error).message}`, 'oidc_unavailable');
    }
    cached = { key, at: Date.now(), config };
    return config;
  }

  return {
    async isConfigured(): Promise<boolean> {
      return (await settings.oidc()) !== null;
    },

    async begin(redirectUri: string): Promise<{ url: string; login: OidcLoginState }> {
      const config = await configuration();
      const codeVerifier = client.randomPKCECodeVerifier();
      const login: OidcLoginState = {
        state: client.randomState(),
        nonce: client.randomNonce(),
        codeVerifier,
        issuer: config.serverMetadata().issuer,
      };
      const url = client.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        scope: 'openid email profile',
        state: login.state,
        nonce: login.nonce,
        code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: 'S256',
      });
      return { url: url.href, login };
    },

    /** Verifies everything (state, PKCE, ID token signature, iss, aud, exp, nonce) and returns the user. */
    async finish(currentUrl: URL, login: OidcLoginState): Promise<User> {
      const config = await configuration();
      if (config.serverMetadata().issuer !== login.issuer) throw new UnauthorizedError('OIDC settings changed during sign-in', 'oidc_failed');
      let claims: client.IDToken | undefined;
      try {
        const tokens = await client.authorizationCodeGrant(config, currentUrl, {
          pkceCodeVerifier: login.codeVerifier,
          expectedState: login.state,
          expectedNonce: login.nonce,
          idTokenExpected: true,
        });
        claims = tokens.claims();
      } catch (err) {
        // oauth4webapi's codes say which check failed (state, nonce, issuer, grant).
        const e = err as Error & { code?: string; error?: string; cause?: { claim?: string; parameter?: string } };
        const what = [e.code, e.error, e.cause?.claim ?? e.cause?.parameter].filter(Boolean).join(', ');
        throw new UnauthorizedError(`OIDC sign-in refused: ${e.message}${what ? ` (${what})` : ''}`, 'oidc_failed');
      }
      if (!claims?.sub) throw new UnauthorizedError('OIDC sign-in refused: no subject', 'oidc_failed');
      return upsertUser(claims);
    },
  };

  /** Users are keyed by issuer subject; an email is kept only when the issuer says it is verified. */
  async function upsertUser(claims: client.IDToken): Promise<User> {
    const username = `oidc:${claims.sub}`.slice(0, 200);
    const email = claims.email_verified === true && typeof claims.email === 'string' ? claims.email.toLowerCase() : null;
    const displayName = (typeof claims.name === 'string' && claims.name) || email || String(claims.sub);
    const existing = await db.user.findUnique({ where: { username } });
    if (existing) {
      if (existing.status === 'suspended') throw new ForbiddenError('This account is suspended; ask an admin to reactivate it', 'account_suspended');
      if (existing.status !== 'active') throw new UnauthorizedError('This account is deactivated', 'account_deactivated');
      return existing;
    }
    const emailTaken = email ? await db.user.findUnique({ where: { email } }) : null;
    // Only a never-linked invitation (made by an admin with this email: no
    // password, no login name, never signed in through OIDC) is claimed by the
    // first verified sign-in. An account already linked to another subject is
    // never re-linked (a second identity with the same email would take it
    // over), and a password account is never taken over.
    if (emailTaken && isUnclaimedInvitation(emailTaken)) {
      // Conditional on still being unclaimed: two first sign-ins cannot both win.
      const { count } = await db.user.updateMany({ where: { id: emailTaken.id, username: null, authSource: 'local', passwordHash: null }, data: { username, authSource: 'oidc' } });
      if (count === 1) return db.user.findUniqueOrThrow({ where: { id: emailTaken.id } });
    }
    return db.user.create({
      data: { username, email: emailTaken ? null : email, displayName: displayName.slice(0, 100), role: 'member', authSource: 'oidc' },
    });
  }
}

export function isUnclaimedInvitation(u: User): boolean {
  return u.status === 'active' && u.authSource === 'local' && u.passwordHash === null && u.username === null;
}

export type OidcService = ReturnType<typeof createOidcService>;
