import { describe, expect, it } from 'vitest';
import {
  contentDigest,
  endorse,
  endorsementValid,
  fingerprintOf,
  generateKeyPair,
  privateKeyFrom,
  signRequest,
  signResponse,
  SignatureRefused,
  verifyRequest,
  verifyResponse,
  type KeyFinder,
} from '../../core/federation-signatures.ts';

// The wire format of federation commands (RFC 9421 + RFC 9530): what a peer
// signs verifies, and every way of tampering with it is refused for its own
// reason.
const hub = generateKeyPair();
const spoke = generateKeyPair();
const URL_ = 'https://spoke.example/api/federation/commands';
const body = JSON.stringify({ id: 'c1', from: 'hub-1', type: 'agent.status', payload: { ref: 'a' } });
const keysOf = (map: Record<string, string[]>): KeyFinder => async (keyid) => (map[keyid] ? { keys: map[keyid] } : null);

async function signed(overrides: { created?: Date; nonce?: string; privateKey?: string } = {}) {
  const { headers, nonce } = await signRequest({
    url: URL_,
    method: 'POST',
    body,
    keyid: 'hub-1',
    privateKey: privateKeyFrom(overrides.privateKey ?? hub.privateKey),
    created: overrides.created,
    nonce: overrides.nonce,
  });
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  return { headers: lower, nonce };
}

const lower = (h: Record<string, string>) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof SignatureRefused) return err.problem;
    throw err;
  }
  return 'accepted';
}

describe('federation signatures', () => {
  it('signs @method, @target-uri and content-digest with created, nonce, keyid and alg=ed25519', async () => {
    const { headers, nonce } = await signed();
    expect(headers['signature-input']).toMatch(/^sig=\("@method" "@target-uri" "content-digest"\);created=\d+;nonce="[^"]+";keyid="hub-1";alg="ed25519"$/);
    expect(headers['signature']).toMatch(/^sig=:[A-Za-z0-9+/]+=*:$/);
    expect(headers['content-digest']).toBe(contentDigest(body));
    const params = await verifyRequest({ method: 'POST', url: URL_, headers, body }, keysOf({ 'hub-1': [hub.publicKey] }));
    expect(params).toMatchObject({ keyid: 'hub-1', nonce });
  });

  it('refuses each tampering for its own reason', async () => {
    const ok = await signed();
    const find = keysOf({ 'hub-1': [hub.publicKey] });
    const check = (over: Partial<{ method: string; url: string; headers: Record<string, string>; body: string }>) =>
      refusal(verifyRequest({ method: 'POST', url: URL_, headers: ok.headers, body, ...over }, find));
    expect(await check({ headers: { 'content-type': 'application/json' } })).toBe('missing');
    expect(await check({ body: body.replace('agent.status', 'agent.kill') })).toBe('bad_digest');
    expect(await check({ headers: { ...ok.headers, 'content-digest': contentDigest('{}') }, body: '{}' })).toBe('bad_signature');
    expect(await check({ url: 'https://other.example/api/federation/commands' })).toBe('bad_signature');
    expect(await check({ method: 'PUT' })).toBe('bad_signature');
    expect(await refusal(verifyRequest({ method: 'POST', url: URL_, headers: ok.headers, body }, keysOf({})))).toBe('unknown_key');
    // Signed by someone else's key under the hub's keyid.
    const forged = await signed({ privateKey: spoke.privateKey });
    expect(await refusal(verifyRequest({ method: 'POST', url: URL_, headers: forged.headers, body }, find))).toBe('bad_signature');
    // Ten minutes old, or from the future.
    const old = await signed({ created: new Date(Date.now() - 10 * 60_000) });
    expect(await refusal(verifyRequest({ method: 'POST', url: URL_, headers: old.headers, body }, find))).toBe('stale');
    const early = await signed({ created: new Date(Date.now() + 6 * 60_000) });
    expect(await refusal(verifyRequest({ method: 'POST', url: URL_, headers: early.headers, body }, find))).toBe('stale');
    // A second signature label riding along is not accepted.
    const twice = { ...ok.headers, 'signature-input': `${ok.headers['signature-input']}, sig2=("@method");created=1;nonce="abcdefgh";keyid="x";alg="ed25519"` };
    expect(await check({ headers: twice })).toBe('malformed');
    // Covering less than the required components.
    const partial = { ...ok.headers, 'signature-input': ok.headers['signature-input'].replace(' "content-digest"', '') };
    expect(await check({ headers: partial })).toBe('malformed');
  });

  it('accepts a rotated key its pinned key endorses, and the old one alongside it', async () => {
    const rotated = generateKeyPair();
    const endorsement = endorse(privateKeyFrom(hub.privateKey), 'hub-1', rotated.publicKey);
    expect(endorsementValid(hub.publicKey, 'hub-1', rotated.publicKey, endorsement)).toBe(true);
    expect(endorsementValid(spoke.publicKey, 'hub-1', rotated.publicKey, endorsement)).toBe(false);
    expect(endorsementValid(hub.publicKey, 'hub-2', rotated.publicKey, endorsement)).toBe(false);
    const learned: string[] = [];
    const find: KeyFinder = async () => ({ keys: [hub.publicKey], learn: async (k) => void learned.push(k) });
    const sign = (privateKey: string, endorsement?: string) => signRequest({ url: URL_, method: 'POST', body, keyid: 'hub-1', privateKey: privateKeyFrom(privateKey), endorsement });
    // The new key alone is nobody's; with the endorsement the pinned key made, it is the hub's, and is learned.
    expect(await refusal(verifyRequest({ method: 'POST', url: URL_, headers: lower((await sign(rotated.privateKey)).headers), body }, find))).toBe('bad_signature');
    await verifyRequest({ method: 'POST', url: URL_, headers: lower((await sign(rotated.privateKey, `${rotated.publicKey}.${endorsement}`)).headers), body }, find);
    expect(learned).toEqual([rotated.publicKey]);
    // An endorsement is for one key: someone else's key under it is refused, and nothing is learned.
    const other = generateKeyPair();
    expect(await refusal(verifyRequest({ method: 'POST', url: URL_, headers: lower((await sign(other.privateKey, `${other.publicKey}.${endorsement}`)).headers), body }, find))).toBe('bad_signature');
    expect(learned).toEqual([rotated.publicKey]);
    // A key in its grace period (perhaps rotated away because it leaked) may sign, but endorses nothing.
    const leaked = generateKeyPair();
    const byOld = endorse(privateKeyFrom(leaked.privateKey), 'hub-1', other.publicKey);
    const afterRotation: KeyFinder = async () => ({ keys: [rotated.publicKey, leaked.publicKey], learn: async (k) => void learned.push(k) });
    await verifyRequest({ method: 'POST', url: URL_, headers: lower((await sign(leaked.privateKey)).headers), body }, afterRotation);
    expect(await refusal(verifyRequest({ method: 'POST', url: URL_, headers: lower((await sign(other.privateKey, `${other.publicKey}.${byOld}`)).headers), body }, afterRotation))).toBe('bad_signature');
    expect(learned).toEqual([rotated.publicKey]);
  });

  it('binds an answer to the request it answers', async () => {
    const req = await signed();
    const request = { method: 'POST', url: URL_, headers: req.headers };
    const answer = JSON.stringify({ status: 'running' });
    const headers = await signResponse({ status: 200, body: answer, request, keyid: 'spoke-1', privateKey: privateKeyFrom(spoke.privateKey), nonce: req.nonce });
    const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
    const find = keysOf({ 'spoke-1': [spoke.publicKey] });
    await verifyResponse({ status: 200, headers: lower, body: answer }, request, { nonce: req.nonce, keyid: 'spoke-1' }, find);
    expect(await refusal(verifyResponse({ status: 202, headers: lower, body: answer }, request, { nonce: req.nonce, keyid: 'spoke-1' }, find))).toBe('bad_signature');
    expect(await refusal(verifyResponse({ status: 200, headers: lower, body: '{"status":"error"}' }, request, { nonce: req.nonce, keyid: 'spoke-1' }, find))).toBe('bad_digest');
    const other = await signed();
    expect(await refusal(verifyResponse({ status: 200, headers: lower, body: answer }, { ...request, headers: other.headers }, { nonce: other.nonce, keyid: 'spoke-1' }, find))).toBe('bad_signature');
    expect(await refusal(verifyResponse({ status: 200, headers: lower, body: answer }, request, { nonce: req.nonce, keyid: 'spoke-2' }, find))).toBe('unknown_key');
  });

  it('shows fingerprints the way SSH does', () => {
    expect(fingerprintOf(hub.publicKey)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(fingerprintOf(hub.publicKey)).not.toBe(fingerprintOf(spoke.publicKey));
  });
});
