import { ValidationError } from '../errors.ts';

// OIDC settings live in the settings service (the secret encrypted), so a
// change applies without a restart; they are checked against the issuer first.

export interface OidcDiscovery {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  jwks_uri: string;
}

/** Checked before anything is saved: the issuer must publish a discovery document naming itself. */
export async function discoverOidcIssuer(issuerUrl: string, timeoutMs = 10_000): Promise<OidcDiscovery> {
  const base = issuerUrl.replace(/\/+$/, '');
  let doc: Partial<OidcDiscovery>;
  try {
    const res = await fetch(`${base}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) throw new Error(`discovery answered HTTP ${res.status}`);
    doc = (await res.json()) as Partial<OidcDiscovery>;
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    throw new ValidationError(`OIDC discovery failed for ${issuerUrl}: ${e.cause?.code ?? e.message}`, undefined, 'oidc_discovery_failed');
  }
  if (doc.issuer?.replace(/\/+$/, '') !== base || !doc.authorization_endpoint || !doc.token_endpoint || !doc.jwks_uri) {
    throw new ValidationError(`The discovery document at ${issuerUrl} does not describe that issuer`, undefined, 'oidc_discovery_failed');
  }
  return doc as OidcDiscovery;
}
