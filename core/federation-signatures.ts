import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { httpbis, type Request as SignedRequest, type Response as SignedResponse, type SignatureParameters } from 'http-message-signatures';

// Federation commands travel as HTTP Message Signatures (RFC 9421) with
// Ed25519 keys: the `http-message-signatures` package builds and parses the
// signature base and the Signature / Signature-Input fields; node's crypto
// signs and verifies; the body is bound by an RFC 9530 Content-Digest
// (sha-256). Pure functions over keys and messages: no database, no network.

/** ±5 minutes: a `created` further off than this is refused (and nonces are kept this long and a margin). */
export const SIGNATURE_WINDOW_SEC = 300;
export const SIGNATURE_ALG = 'ed25519';
/** What every command signature must cover. */
export const REQUEST_COMPONENTS = ['@method', '@target-uri', 'content-digest'] as const;
/** What every answer to a command covers: its status and body, bound to the request it answers. */
export const RESPONSE_COMPONENTS = ['@status', 'content-digest', '"@method";req', '"@target-uri";req'] as const;
const REQUIRED_PARAMS = ['created', 'nonce', 'keyid', 'alg'];

/** Raw Ed25519 public key (32 bytes, base64url) ↔ node key objects. */
export function publicKeyFromRaw(raw: string): KeyObject {
  const bytes = Buffer.from(raw, 'base64url');
  if (bytes.length !== 32) throw new Error('an Ed25519 public key is 32 bytes');
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: bytes.toString('base64url') }, format: 'jwk' });
}

export function rawPublicKey(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' }) as { x?: string };
  if (!jwk.x) throw new Error('not an Ed25519 key');
  return jwk.x;
}

/** `SHA256:<base64 of sha256(raw key)>`, the way SSH shows fingerprints: what an admin compares. */
export function fingerprintOf(rawPublic: string): string {
  return `SHA256:${createHash('sha256').update(Buffer.from(rawPublic, 'base64url')).digest('base64').replace(/=+$/, '')}`;
}

/** A short id for one key (the identity's `keyId`). */
export function keyIdOf(rawPublic: string): string {
  return createHash('sha256').update(Buffer.from(rawPublic, 'base64url')).digest('base64url').slice(0, 16);
}

export interface KeyPair {
  /** PKCS#8 DER, base64url: what gets sealed at rest. */
  privateKey: string;
  publicKey: string;
}

export function generateKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKey: privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64url'), publicKey: rawPublicKey(publicKey) };
}

export function privateKeyFrom(pkcs8: string): KeyObject {
  return createPrivateKey({ key: Buffer.from(pkcs8, 'base64url'), format: 'der', type: 'pkcs8' });
}

/** What a rotated identity publishes: the new key, signed by the key it replaces, so a peer that pinned the old one can trust the new. */
export function rotationStatement(instanceId: string, newPublic: string): Buffer {
  return Buffer.from(`hangar-federation-key-rotation\n${instanceId}\n${newPublic}`);
}

export function endorse(oldPrivate: KeyObject, instanceId: string, newPublic: string): string {
  return sign(null, rotationStatement(instanceId, newPublic), oldPrivate).toString('base64url');
}

export function endorsementValid(oldPublic: string, instanceId: string, newPublic: string, endorsement: string): boolean {
  try {
    return verify(null, rotationStatement(instanceId, newPublic), publicKeyFromRaw(oldPublic), Buffer.from(endorsement, 'base64url'));
  } catch {
    return false;
  }
}

/** RFC 9530 Content-Digest with sha-256. */
export function contentDigest(body: string | Buffer): string {
  return `sha-256=:${createHash('sha256').update(body).digest('base64')}:`;
}

/** Whether a Content-Digest field carries a sha-256 member matching `body` (other algorithms are ignored; sha-256 is required). */
export function digestMatches(field: string | undefined, body: string | Buffer): boolean {
  if (!field) return false;
  const expected = contentDigest(body);
  return field.split(',').map((m) => m.trim()).some((m) => m === expected);
}

export const newNonce = () => randomBytes(16).toString('base64url');

type Headers = Record<string, string>;

/** Signs a command: returns the headers to send with `body` to `url`. */
export async function signRequest(opts: {
  url: string;
  method: string;
  body: string;
  keyid: string;
  privateKey: KeyObject;
  nonce?: string;
  created?: Date;
  /** `<new key>.<endorsement>` while the sender's previous key is in its grace period. */
  endorsement?: string | null;
}): Promise<{ headers: Headers; nonce: string }> {
  const nonce = opts.nonce ?? newNonce();
  const message: SignedRequest = {
    method: opts.method,
    url: opts.url,
    headers: {
      'content-type': 'application/json',
      'content-digest': contentDigest(opts.body),
      ...(opts.endorsement ? { [ENDORSEMENT_HEADER]: opts.endorsement } : {}),
    },
  };
  const signed = await httpbis.signMessage({
    key: { id: opts.keyid, alg: SIGNATURE_ALG, sign: async (data) => sign(null, data, opts.privateKey) },
    fields: [...REQUEST_COMPONENTS],
    params: ['created', 'nonce', 'keyid', 'alg'],
    paramValues: { created: opts.created ?? new Date(), nonce },
  }, message);
  return { headers: signed.headers as Headers, nonce };
}

/** Why a signed message was refused; each maps to its own answer. */
export type SignatureProblem = 'missing' | 'malformed' | 'unknown_key' | 'bad_signature' | 'bad_digest' | 'stale';

export class SignatureRefused extends Error {
  constructor(readonly problem: SignatureProblem, message: string, readonly params: Partial<VerifiedParams> = {}) {
    super(message);
  }
}

export interface VerifiedParams {
  keyid: string;
  nonce: string;
  created: Date;
}

/**
 * After a rotation a sender attaches `<new public key>.<endorsement>`: the
 * new key signed by the one it replaces. A receiver that pinned the old key
 * can check that itself, with no round trip and nothing to race.
 */
export const ENDORSEMENT_HEADER = 'hangar-key-endorsement';

/**
 * Candidate public keys for a keyid: first the peer's pinned key, then one
 * it rotated from (still in its grace period); null: nobody we know. `learn`
 * pins a new key that the pinned key (`keys[0]`) endorsed and that verified
 * the message.
 */
export type KeyFinder = (keyid: string) => Promise<{ keys: string[]; learn?: (publicKey: string) => Promise<void> } | null>;

function offeredKey(field: string | undefined): { publicKey: string; endorsement: string } | null {
  const m = /^([A-Za-z0-9_-]{43})\.([A-Za-z0-9_-]{40,200})$/.exec((field ?? '').trim());
  return m ? { publicKey: m[1], endorsement: m[2] } : null;
}

function firstSignatureParams(input: string | undefined): { labels: number } {
  // One signature per message: a second label would let a sender hide one we do not check.
  const labels = (input ?? '').split(/,(?=\s*[A-Za-z*][A-Za-z0-9_.*-]*=\()/).filter((s) => s.trim()).length;
  return { labels };
}

async function verifyWith(
  message: SignedRequest | SignedResponse,
  request: SignedRequest | undefined,
  findKeys: KeyFinder,
  requiredFields: readonly string[],
): Promise<VerifiedParams> {
  const headers = message.headers;
  if (!headers['signature'] && !headers['signature-input']) throw new SignatureRefused('missing', 'The message is not signed (Signature and Signature-Input are required)');
  if (firstSignatureParams(String(headers['signature-input'] ?? '')).labels !== 1) throw new SignatureRefused('malformed', 'Exactly one signature is accepted');
  let seen: SignatureParameters | null = null;
  let unknown = false;
  let ok: boolean | null;
  try {
    ok = await httpbis.verifyMessage({
      all: true,
      requiredParams: REQUIRED_PARAMS,
      requiredFields: [...requiredFields],
      // `created` is checked below, after the signature, so a stale but genuine request gets its own answer.
      notAfter: Number.MAX_SAFE_INTEGER,
      async keyLookup(params) {
        seen = params;
        const keyid = String(params.keyid ?? '');
        const found = keyid ? await findKeys(keyid) : null;
        if (!found) {
          unknown = true;
          return null;
        }
        return {
          id: keyid,
          algs: [SIGNATURE_ALG],
          async verify(data, signature) {
            const tryKeys = (keys: string[]) => keys.some((k) => {
              try {
                return verify(null, data, publicKeyFromRaw(k), signature);
              } catch {
                return false;
              }
            });
            if (tryKeys(found.keys)) return true;
            // The sender rotated its key: accepted when the key we pinned (keys[0]) endorses the new one and
            // the new one verifies. Never a key in its grace period: that may be the key rotated away because
            // it leaked, and whoever holds it must not get to pin a key of their own.
            const offered = offeredKey(String(headers[ENDORSEMENT_HEADER] ?? ''));
            if (!offered || !endorsementValid(found.keys[0], keyid, offered.publicKey, offered.endorsement)) return false;
            if (!tryKeys([offered.publicKey])) return false;
            await found.learn?.(offered.publicKey);
            return true;
          },
        };
      },
    }, message as SignedResponse, request);
  } catch (err) {
    const params = paramsOf(seen);
    if (unknown) throw new SignatureRefused('unknown_key', `No peer with key id ${JSON.stringify(params.keyid ?? '')}`, params);
    throw new SignatureRefused('malformed', `Signature refused: ${(err as Error).message}`, params);
  }
  const params = paramsOf(seen);
  if (ok !== true) throw new SignatureRefused('bad_signature', 'The signature does not verify with the key of its keyid', params);
  if (params.created === undefined || params.nonce === undefined || params.keyid === undefined) {
    throw new SignatureRefused('malformed', 'created, nonce and keyid are required', params);
  }
  if (!/^[A-Za-z0-9_-]{8,128}$/.test(params.nonce)) throw new SignatureRefused('malformed', 'The nonce must be 8..128 characters of base64url', params);
  return params as VerifiedParams;
}

function paramsOf(seen: SignatureParameters | null): Partial<VerifiedParams> {
  if (!seen) return {};
  const created = seen.created instanceof Date && !Number.isNaN(seen.created.getTime()) ? seen.created : undefined;
  return {
    keyid: typeof seen.keyid === 'string' ? seen.keyid : undefined,
    nonce: typeof seen.nonce === 'string' ? seen.nonce : undefined,
    created,
  };
}

function assertFresh(params: VerifiedParams, now: Date): void {
  const skew = Math.abs(now.getTime() - params.created.getTime()) / 1000;
  if (skew > SIGNATURE_WINDOW_SEC) {
    throw new SignatureRefused('stale', `The signature was created ${Math.round(skew)} s from now; at most ${SIGNATURE_WINDOW_SEC} s either way is accepted`, params);
  }
}

/**
 * Verifies a command as received: one Ed25519 signature covering @method,
 * @target-uri (as this instance names itself) and Content-Digest, with
 * created, nonce and keyid; the digest matches the body; created within the
 * window. Throws SignatureRefused saying which check failed. The nonce is the
 * caller's to remember (a replay cache).
 */
export async function verifyRequest(req: { method: string; url: string; headers: Headers; body: string }, findKeys: KeyFinder, now = new Date()): Promise<VerifiedParams> {
  const params = await verifyWith({ method: req.method, url: req.url, headers: req.headers }, undefined, findKeys, REQUEST_COMPONENTS);
  // The signature covers the digest field; this checks the field against the bytes that came.
  if (!digestMatches(req.headers['content-digest'], req.body)) throw new SignatureRefused('bad_digest', 'Content-Digest (sha-256) does not match the body', params);
  assertFresh(params, now);
  return params;
}

/** Signs an answer to a command, bound to that request and echoing its nonce (so an old answer cannot be replayed). */
export async function signResponse(opts: {
  status: number;
  body: string;
  request: SignedRequest;
  keyid: string;
  privateKey: KeyObject;
  nonce: string;
  endorsement?: string | null;
}): Promise<Headers> {
  const signed = await httpbis.signMessage({
    key: { id: opts.keyid, alg: SIGNATURE_ALG, sign: async (data) => sign(null, data, opts.privateKey) },
    fields: [...RESPONSE_COMPONENTS],
    params: ['created', 'nonce', 'keyid', 'alg'],
    paramValues: { created: new Date(), nonce: opts.nonce },
  }, {
    status: opts.status,
    headers: { 'content-digest': contentDigest(opts.body), ...(opts.endorsement ? { [ENDORSEMENT_HEADER]: opts.endorsement } : {}) },
  }, opts.request);
  return signed.headers as Headers;
}

/** Verifies a peer's answer: signed by the peer, bound to our request and its nonce, digest matching. */
export async function verifyResponse(
  res: { status: number; headers: Headers; body: string },
  request: SignedRequest,
  expect: { nonce: string; keyid: string },
  findKeys: KeyFinder,
  now = new Date(),
): Promise<VerifiedParams> {
  const params = await verifyWith({ status: res.status, headers: res.headers }, request, findKeys, ['@status', 'content-digest']);
  if (params.keyid !== expect.keyid) throw new SignatureRefused('unknown_key', `The answer is signed by ${params.keyid}, not the peer we asked (${expect.keyid})`, params);
  if (params.nonce !== expect.nonce) throw new SignatureRefused('bad_signature', 'The answer is bound to another request (nonce differs)', params);
  if (!digestMatches(res.headers['content-digest'], res.body)) throw new SignatureRefused('bad_digest', 'The answer\'s Content-Digest does not match its body', params);
  assertFresh(params, now);
  return params;
}
