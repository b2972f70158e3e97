import type { CommandAnswer, CommandEnvelope } from '../contracts/federation.contract.ts';
import { signRequest, SignatureRefused, verifyResponse, type KeyFinder } from '../federation-signatures.ts';
import { AppError, UnavailableError, ValidationError } from '../errors.ts';
import type { Identity } from './federation-identity.service.ts';

// Hangar's outbound HTTP to its peers: fetching an identity, sending a signed
// command and checking the signed answer. Peers are added by admins, so the
// target is theirs to choose, but a peer cannot bounce Hangar somewhere else:
// redirects are refused, never followed, and answers are size-capped.

const TIMEOUT_MS = 15_000;
const MAX_ANSWER_BYTES = 256 * 1024;

export const COMMANDS_PATH = '/api/federation/commands';
export const IDENTITY_PATH = '/api/federation/identity';

/** A peer's base URL as stored: http(s), no credentials, query or fragment, no trailing slash. */
export function normalizePeerUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ValidationError('url must be an absolute http(s) URL', { field: 'url' });
  }
  if (!['http:', 'https:'].includes(u.protocol) || u.username || u.password || u.search || u.hash) {
    throw new ValidationError('url must be http(s), without credentials, query or fragment', { field: 'url' });
  }
  return `${u.origin}${u.pathname}`.replace(/\/+$/, '');
}

export class PeerUnreachableError extends UnavailableError {
  constructor(message: string) {
    super(message, 'peer_unreachable');
  }
}

async function readCapped(res: Response): Promise<string> {
  const length = Number(res.headers.get('content-length') ?? 0);
  if (length > MAX_ANSWER_BYTES) throw new PeerUnreachableError(`The peer's answer is too large (${length} bytes)`);
  const reader = res.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > MAX_ANSWER_BYTES) {
      await reader.cancel().catch(() => undefined);
      throw new PeerUnreachableError(`The peer's answer is larger than ${MAX_ANSWER_BYTES} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function call(url: string, init: RequestInit): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  let res: Response;
  try {
    // manual: a 3xx comes back as an answer, which is refused below, never followed.
    res = await fetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(TIMEOUT_MS) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new PeerUnreachableError(`The peer at ${new URL(url).origin} did not answer: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
  }
  if (res.status >= 300 && res.status < 400) {
    await res.body?.cancel().catch(() => undefined);
    throw new PeerUnreachableError(`The peer answered with a redirect (${res.status}); Hangar does not follow redirects to peers`);
  }
  const headers: Record<string, string> = {};
  res.headers.forEach((v, k) => (headers[k] = v));
  return { status: res.status, headers, body: await readCapped(res) };
}

function parseIdentity(body: string): Identity {
  let j: Partial<Identity>;
  try {
    j = JSON.parse(body) as Partial<Identity>;
  } catch {
    throw new PeerUnreachableError('The peer\'s identity is not JSON');
  }
  const str = (v: unknown) => typeof v === 'string' && v.length > 0 && v.length < 2048;
  if (!str(j.instanceId) || !str(j.publicKey) || !str(j.url) || !str(j.name)) throw new PeerUnreachableError('The peer\'s identity lacks instanceId, name, url or publicKey');
  return { ...j, previousKeys: Array.isArray(j.previousKeys) ? j.previousKeys : [], endorsement: typeof j.endorsement === 'string' ? j.endorsement : null } as Identity;
}

export function createFederationClient() {
  return {
    async fetchIdentity(baseUrl: string): Promise<Identity> {
      const res = await call(`${baseUrl}${IDENTITY_PATH}`, { headers: { accept: 'application/json' } });
      if (res.status !== 200) throw new PeerUnreachableError(`The peer's identity answered ${res.status}`);
      return parseIdentity(res.body);
    },

    /**
     * Sends one signed command. `targetUri` is the command endpoint as the peer
     * names itself (what the signature covers); `connectUrl` where we reach it.
     * The answer must be signed by the peer and bound to this request: a
     * refusal (4xx) comes back as the peer's own AppError; anything unsigned,
     * unverifiable or 5xx is PeerUnreachableError (worth retrying).
     */
    async send(opts: {
      connectUrl: string;
      targetUri: string;
      envelope: CommandEnvelope;
      signer: { keyid: string; privateKey: import('node:crypto').KeyObject; endorsement: string | null };
      peerInstanceId: string;
      peerKeys: KeyFinder;
    }): Promise<{ status: number; answer: CommandAnswer }> {
      const body = JSON.stringify(opts.envelope);
      const { headers, nonce } = await signRequest({ url: opts.targetUri, method: 'POST', body, keyid: opts.signer.keyid, privateKey: opts.signer.privateKey, endorsement: opts.signer.endorsement });
      const res = await call(`${opts.connectUrl}${COMMANDS_PATH}`, { method: 'POST', headers, body });
      try {
        await verifyResponse(res, { method: 'POST', url: opts.targetUri, headers }, { nonce, keyid: opts.peerInstanceId }, opts.peerKeys);
      } catch (err) {
        if (!(err instanceof SignatureRefused)) throw err;
        throw new PeerUnreachableError(`The peer's answer (${res.status}) is not signed by it for this request (${err.problem}: ${err.message})`);
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(res.body);
      } catch {
        throw new PeerUnreachableError(`The peer's answer (${res.status}) is not JSON`);
      }
      if (res.status >= 400) {
        const e = (parsed as { error?: { code?: string; message?: string } }).error;
        const message = `The peer refused: ${e?.message ?? res.status}`;
        if (res.status >= 500) throw new PeerUnreachableError(message);
        throw new AppError(res.status, e?.code ?? 'peer_refused', message);
      }
      return { status: res.status, answer: parsed as CommandAnswer };
    },
  };
}

export type FederationClient = ReturnType<typeof createFederationClient>;
