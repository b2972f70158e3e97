import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { COMMAND_TYPES, type CommandEnvelope } from '../../core/contracts/federation.contract.ts';
import type { FederationPeer } from '../../core/db.ts';
import { AppError, ConflictError, RateLimitedError, UnauthorizedError, ValidationError } from '../../core/errors.ts';
import { newNonce, signResponse, SignatureRefused, verifyRequest } from '../../core/federation-signatures.ts';
import { COMMANDS_PATH } from '../../core/services/federation-client.service.ts';
import { errors, Nullable, strict } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';

// What a peer reaches: this instance's public identity, and the command
// endpoint. Commands are HTTP Message Signatures (RFC 9421) by a known
// peer's key over @method, @target-uri and Content-Digest, with created,
// nonce and keyid; they are checked before the body is even validated, and
// every refusal is its own 4xx and a fleet event. Answers are signed too,
// bound to the request, so the hub knows who answered.

const Key = Type.Object({ keyId: Type.String(), publicKey: Type.String(), fingerprint: Type.String() });
export const IdentityView = Type.Object({
  instanceId: Type.String(),
  name: Type.String(),
  url: Type.String(),
  algorithm: Type.Literal('ed25519'),
  ...Key.properties,
  previousKeys: Type.Array(Type.Object({ ...Key.properties, acceptedUntil: Type.String() })),
  endorsement: Nullable(Type.String()),
});

const Ref = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' });
const Envelope = strict({
  id: Type.String({ minLength: 1, maxLength: 200, pattern: '^[A-Za-z0-9_./:-]+$' }),
  from: Type.String({ minLength: 1, maxLength: 64 }),
  type: Type.Union(COMMAND_TYPES.map((t) => Type.Literal(t))),
  payload: Type.Union([
    strict({
      ref: Ref,
      name: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\u0000-\\u001f\\u007f]+$' })),
      primaryModel: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 200, pattern: '^[A-Za-z0-9._:/-]+$' }))),
    }),
  ]),
});
const Answer = Type.Object({
  id: Type.String(),
  type: Type.String(),
  agent: Type.Object({
    ref: Type.String(),
    remoteAgentId: Nullable(Type.String()),
    status: Type.String(),
    statusReason: Nullable(Type.String()),
  }),
});

declare module 'fastify' {
  interface FastifyRequest {
    rawBody?: string;
    federationPeer?: FederationPeer;
  }
}

/** Header values as the signature library takes them (node gives repeated fields as arrays). */
function flatHeaders(request: FastifyRequest): Record<string, string> {
  return Object.fromEntries(Object.entries(request.headers).filter(([, v]) => v !== undefined).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : String(v)]));
}

const REFUSALS: Record<SignatureRefused['problem'], () => AppError> = {
  missing: () => new UnauthorizedError('The command is not signed (HTTP Message Signatures: Signature-Input and Signature)', 'bad_signature'),
  malformed: () => new UnauthorizedError('The command\'s signature is malformed or covers too little', 'bad_signature'),
  bad_signature: () => new UnauthorizedError('The command\'s signature does not verify', 'bad_signature'),
  unknown_key: () => new UnauthorizedError('No peer here signs with that key id', 'unknown_peer'),
  bad_digest: () => new ValidationError('Content-Digest does not match the body', undefined, 'bad_digest'),
  stale: () => new ValidationError('The signature\'s created time is more than 5 minutes off', undefined, 'stale_signature'),
};

export async function federationRoutes(fastify: FastifyInstance, { core }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

  app.get('/api/federation/identity', { schema: { response: { 200: IdentityView } } }, async () => core.federationIdentity.identity());

  // The command endpoint in a scope of its own: it keeps the raw body (the
  // digest is over the bytes as sent) and signs every answer it gives.
  await app.register(async (scope) => {
    const cmd = scope.withTypeProvider<TypeBoxTypeProvider>();
    cmd.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: 64 * 1024 }, (request, body, done) => {
      request.rawBody = body as string;
      try {
        done(null, JSON.parse(body as string));
      } catch {
        done(new ValidationError('The body is not JSON', undefined, 'invalid_json'), undefined);
      }
    });
    const ourUrl = async () => core.federationIdentity.url();
    const refused = async (request: FastifyRequest, err: AppError, params: Partial<{ keyid: string; nonce: string }> = {}) => {
      await core.rollouts.recordEvent({
        type: 'federation.command_refused',
        payload: { code: err.code, status: err.status, keyid: params.keyid ?? null, nonce: params.nonce ?? null, address: request.ip, peerId: request.federationPeer?.id ?? null },
      });
      return err;
    };

    // Before validation: an unsigned or forged request learns nothing about the body schema.
    cmd.addHook('preValidation', async (request) => {
      let params;
      try {
        params = await verifyRequest(
          { method: request.method, url: `${await ourUrl()}${request.url}`, headers: flatHeaders(request), body: request.rawBody ?? '' },
          core.federation.keyFinder(),
        );
      } catch (err) {
        if (!(err instanceof SignatureRefused)) throw err;
        throw await refused(request, REFUSALS[err.problem](), err.params);
      }
      const peer = await core.federation.peerByKeyId(params.keyid);
      if (!peer) throw await refused(request, REFUSALS.unknown_key(), params);
      request.federationPeer = peer;
      if (!(await core.federation.rememberNonce(peer.id, params.nonce, params.created))) {
        throw await refused(request, new ConflictError('This nonce was used already: the request is a replay', 'replayed'), params);
      }
    });

    // Every answer, refusals included, is signed by us and bound to the request it answers (its nonce).
    cmd.addHook('onSend', async (request, reply, payload) => {
      const body = typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : '';
      const nonce = /;nonce="([A-Za-z0-9_-]{8,128})"/.exec(String(request.headers['signature-input'] ?? ''))?.[1] ?? newNonce();
      const signer = await core.federationIdentity.signer();
      const headers = await signResponse({
        status: reply.statusCode,
        body,
        request: { method: request.method, url: `${await ourUrl()}${request.url}`, headers: flatHeaders(request) },
        keyid: signer.keyid,
        privateKey: signer.privateKey,
        nonce,
        endorsement: signer.endorsement,
      });
      void reply.headers(headers);
      return payload;
    });

    const perMinute = core.config.federationRatePerMin;
    cmd.post(COMMANDS_PATH, {
      bodyLimit: 64 * 1024,
      config: {
        // Per address, before anything is read: refusals write fleet events, so a flood must stop here first.
        rateLimit: {
          max: perMinute,
          timeWindow: 60_000,
          keyGenerator: (request) => `federation:${request.ip}`,
          errorResponseBuilder: (_request, ctx) => {
            const seconds = Math.max(1, Math.ceil(ctx.ttl / 1000));
            return new RateLimitedError(`Too many federation requests: at most ${perMinute} a minute; try again in ${seconds} s`, seconds);
          },
        },
      },
      schema: {
        body: Envelope,
        response: { 200: Answer, 202: Answer, ...errors(400, 401, 403, 409, 429, 503) },
      },
    }, async (request, reply) => {
      const peer = request.federationPeer!;
      const env = request.body as CommandEnvelope;
      if (env.from !== peer.instanceId) throw await refused(request, new UnauthorizedError('`from` must be the signer\'s instance id', 'bad_signature'));
      if (env.type === 'agent.spawn' && !('name' in env.payload && env.payload.name)) throw new ValidationError('agent.spawn needs payload.name');
      await core.federation.touchPeer(peer.id);
      try {
        const { status, answer } = await core.federationControl.handle(peer, env);
        return reply.code(status).send(answer);
      } catch (err) {
        if (err instanceof AppError && (err.status === 403 || err.status === 429)) throw await refused(request, err);
        throw err;
      }
    });
  });
}
