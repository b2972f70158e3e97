import type { HangarConfig } from '../config.ts';
import type { Keyring } from '../crypto.ts';
import { NotFoundError, ValidationError } from '../errors.ts';
import { discoverOidcIssuer } from './oidc-discovery.service.ts';
import type { SettingsService } from './settings.service.ts';

// Sign-in settings after onboarding (the admin settings page): OIDC and
// GitHub can be set, changed, tested and removed at any time. Both live in
// system_config (secrets encrypted) and the sign-in routes read them per
// sign-in, so a save applies without a restart. Local accounts and the
// breakglass admin never depend on either.

const PROBE_TIMEOUT_MS = 5000;

export interface Check {
  name: string;
  ok: boolean | null;
  detail: string;
}

export interface OidcInput {
  issuerUrl: string;
  clientId: string;
  /** Optional on a change: the stored secret is kept. */
  clientSecret?: string;
}

export interface GithubInput {
  clientId: string;
  clientSecret?: string;
  allowedOrg: string;
}

async function postForm(url: string, form: Record<string, string>, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', 'user-agent': 'Hangar', ...headers },
    body: new URLSearchParams(form).toString(),
    redirect: 'manual',
    signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
  });
  const body = (await res.json().catch(() => null)) as { error?: string; error_description?: string } | null;
  return { status: res.status, error: body?.error ?? null };
}

const reason = (err: unknown) => {
  const e = err as Error & { cause?: { code?: string } };
  return e.cause?.code ?? e.message;
};

export function createSignInSettingsService({ settings, keyring, config }: { settings: SettingsService; keyring: Keyring; config: HangarConfig }) {
  const base = (config.publicUrl ?? `http://localhost:${config.port}`).replace(/\/$/, '');
  const githubApi = config.githubApiUrl.replace(/\/$/, '');
  const githubOauth = config.githubOauthUrl.replace(/\/$/, '');

  /** The secret to use: the one given, else the stored one (only for the same client). */
  async function oidcWithSecret(input: OidcInput) {
    if (input.clientSecret) return { ...input, clientSecret: input.clientSecret };
    const stored = await settings.oidc();
    if (!stored || stored.clientId !== input.clientId) throw new ValidationError('clientSecret is required for a new client', { field: 'clientSecret' });
    return { ...input, clientSecret: stored.clientSecret };
  }

  async function githubWithSecret(input: GithubInput) {
    if (input.clientSecret) return { ...input, clientSecret: input.clientSecret };
    const stored = await settings.github();
    if (!stored || stored.clientId !== input.clientId) throw new ValidationError('clientSecret is required for a new client', { field: 'clientSecret' });
    return { ...input, clientSecret: stored.clientSecret };
  }

  return {
    /** What the settings page shows: never a secret, only whether one is stored. */
    async view() {
      const [oidc, github] = await Promise.all([settings.oidc(), settings.github()]);
      return {
        oidc: oidc ? { issuerUrl: oidc.issuer, clientId: oidc.clientId, clientSecretSet: true } : null,
        github: github ? { clientId: github.clientId, allowedOrg: github.allowedOrg, clientSecretSet: true } : null,
        // What to register at the identity provider.
        oidcRedirectUri: `${base}/api/auth/oidc/callback`,
        githubCallbackUrl: `${base}/api/auth/github/callback`,
        githubOauthUrl: githubOauth,
        githubApiUrl: githubApi,
      };
    },

    /** Checked against the issuer's discovery document before anything is saved. */
    async saveOidc(input: OidcInput): Promise<void> {
      const s = await oidcWithSecret(input);
      await discoverOidcIssuer(s.issuerUrl, PROBE_TIMEOUT_MS);
      await settings.saveOidc({ issuer: s.issuerUrl, clientId: s.clientId, clientSecretEnc: keyring.encrypt(s.clientSecret) });
    },

    async removeOidc(): Promise<boolean> {
      const had = (await settings.oidc()) !== null;
      await settings.clearOidc();
      return had;
    },

    /**
     * Discovery, the signing keys, and the client credentials: a token request
     * with a made-up code is refused as `invalid_client` when the id or secret
     * is wrong and as `invalid_grant` when they are right (RFC 6749 §5.2).
     */
    async testOidc(input?: OidcInput): Promise<{ ok: boolean; checks: Check[] }> {
      let s: { issuerUrl: string; clientId: string; clientSecret: string };
      if (input) s = await oidcWithSecret(input);
      else {
        const stored = await settings.oidc();
        if (!stored) throw new NotFoundError('OIDC configuration', 'oidc_not_configured');
        s = { issuerUrl: stored.issuer, clientId: stored.clientId, clientSecret: stored.clientSecret };
      }
      const checks: Check[] = [];
      let doc;
      try {
        doc = await discoverOidcIssuer(s.issuerUrl, PROBE_TIMEOUT_MS);
        checks.push({ name: 'discovery', ok: true, detail: `issuer ${doc.issuer}` });
      } catch (err) {
        checks.push({ name: 'discovery', ok: false, detail: (err as Error).message });
        return { ok: false, checks };
      }
      try {
        const res = await fetch(doc.jwks_uri, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
        const keys = res.ok ? ((await res.json()) as { keys?: unknown[] }).keys : undefined;
        checks.push(Array.isArray(keys) && keys.length > 0
          ? { name: 'signing_keys', ok: true, detail: `${keys.length} key(s)` }
          : { name: 'signing_keys', ok: false, detail: `the JWKS at ${doc.jwks_uri} answered ${res.status} without keys` });
      } catch (err) {
        checks.push({ name: 'signing_keys', ok: false, detail: reason(err) });
      }
      try {
        const basic = Buffer.from(`${encodeURIComponent(s.clientId)}:${encodeURIComponent(s.clientSecret)}`).toString('base64');
        const r = await postForm(doc.token_endpoint, { grant_type: 'authorization_code', code: 'hangar-settings-test', redirect_uri: `${base}/api/auth/oidc/callback` }, { authorization: `Basic ${basic}` });
        if (r.error === 'invalid_client' || r.status === 401) checks.push({ name: 'client', ok: false, detail: 'the issuer refused the client id or secret (invalid_client)' });
        else if (r.error === 'invalid_grant') checks.push({ name: 'client', ok: true, detail: 'the issuer accepted the client id and secret' });
        else checks.push({ name: 'client', ok: null, detail: `could not tell: the token endpoint answered ${r.status}${r.error ? ` ${r.error}` : ''}` });
      } catch (err) {
        checks.push({ name: 'client', ok: false, detail: `token endpoint: ${reason(err)}` });
      }
      return { ok: checks.every((c) => c.ok !== false), checks };
    },

    async saveGithub(input: GithubInput): Promise<void> {
      const s = await githubWithSecret(input);
      await settings.saveGithub({ clientId: s.clientId, clientSecret: s.clientSecret, allowedOrg: s.allowedOrg.toLowerCase() });
    },

    async removeGithub(): Promise<boolean> {
      const had = (await settings.github()) !== null;
      await settings.clearGithub();
      return had;
    },

    /**
     * The credentials (GitHub answers a made-up code with
     * `incorrect_client_credentials` or `bad_verification_code`) and that the
     * organisation exists.
     */
    async testGithub(input?: GithubInput): Promise<{ ok: boolean; checks: Check[] }> {
      let s: { clientId: string; clientSecret: string; allowedOrg: string };
      if (input) s = await githubWithSecret(input);
      else {
        const stored = await settings.github();
        if (!stored) throw new NotFoundError('GitHub sign-in configuration', 'github_not_configured');
        s = stored;
      }
      const checks: Check[] = [];
      try {
        const r = await postForm(`${githubOauth}/login/oauth/access_token`, { client_id: s.clientId, client_secret: s.clientSecret, code: 'hangar-settings-test' });
        if (r.error === 'incorrect_client_credentials') checks.push({ name: 'client', ok: false, detail: 'GitHub refused the client id or secret (incorrect_client_credentials)' });
        else if (r.error === 'bad_verification_code') checks.push({ name: 'client', ok: true, detail: 'GitHub accepted the client id and secret' });
        else checks.push({ name: 'client', ok: null, detail: `could not tell: GitHub answered ${r.status}${r.error ? ` ${r.error}` : ''}` });
      } catch (err) {
        checks.push({ name: 'client', ok: false, detail: `${githubOauth}: ${reason(err)}` });
      }
      try {
        const res = await fetch(`${githubApi}/orgs/${encodeURIComponent(s.allowedOrg)}`, {
          headers: { accept: 'application/vnd.github+json', 'user-agent': 'Hangar' },
          signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
        });
        checks.push(res.ok
          ? { name: 'organisation', ok: true, detail: `${s.allowedOrg} exists` }
          : { name: 'organisation', ok: false, detail: `GitHub answered ${res.status} for the organisation ${s.allowedOrg}` });
      } catch (err) {
        checks.push({ name: 'organisation', ok: false, detail: `${githubApi}: ${reason(err)}` });
      }
      return { ok: checks.every((c) => c.ok !== false), checks };
    },
  };
}

export type SignInSettingsService = ReturnType<typeof createSignInSettingsService>;
