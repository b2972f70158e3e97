import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { TOKEN_SCOPES, toPublicUser, type TokenScope } from '../../core/services/users.service.ts';
import { ForbiddenError } from '../../core/errors.ts';
import { SESSION_COOKIE, setSessionCookie } from '../auth.ts';
import { errors, IdParams, PublicUser, strict } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';

const Login = strict({
  username: Type.String({ minLength: 1, maxLength: 254 }),
  password: Type.String({ minLength: 1, maxLength: 1024 }),
});

export async function authRoutes(fastify: FastifyInstance, { core, auth, secureCookies, loginThrottle }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

  app.post('/api/auth/login', {
    schema: { body: Login, response: { 200: Type.Object({ user: PublicUser }), ...errors(400, 401, 403, 429) } },
  }, async (request, reply) => {
    const account = request.body.username.toLowerCase();
    loginThrottle.check(account, request.ip);
    let user;
    try {
      user = await core.users.authenticate(request.body.username, request.body.password);
    } catch (err) {
      loginThrottle.fail(account, request.ip);
      throw err;
    }
    loginThrottle.succeed(account, request.ip);
    const old = request.cookies[SESSION_COOKIE];
    if (old) await core.users.revokeSession(old);
    const session = await core.users.createSession(user.id);
    setSessionCookie(request, reply, session, secureCookies);
    return { user: toPublicUser(user) };
  });

  app.post('/api/auth/logout', { schema: { response: { 204: Type.Null() } } }, async (request, reply) => {
    const token = request.cookies[SESSION_COOKIE];
    if (token) await core.users.revokeSession(token);
    reply.clearCookie(SESSION_COOKIE, { path: '/' });
    return reply.code(204).send(null);
  });

  app.get('/api/auth/me', {
    preHandler: auth.requireUser,
    schema: { response: { 200: Type.Object({ user: PublicUser, csrfToken: Type.Union([Type.String(), Type.Null()]) }), ...errors(401) } },
  }, async (request) => ({ user: toPublicUser(request.user!), csrfToken: request.csrfToken }));

  const TokenView = Type.Object({
    id: Type.String(),
    name: Type.String(),
    prefix: Type.String(),
    createdAt: Type.String(),
    scopes: Type.Array(Type.String()),
    lastUsedAt: Type.Union([Type.String(), Type.Null()]),
    expiresAt: Type.Union([Type.String(), Type.Null()]),
  });

  app.post('/api/tokens', {
    preHandler: auth.requireUser,
    schema: {
      body: strict({
        name: Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\u0000-\\u001f]+$' }),
        expiresInDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650 })),
        scopes: Type.Optional(Type.Array(Type.Union(TOKEN_SCOPES.map((sc) => Type.Literal(sc))), { minItems: 1, maxItems: TOKEN_SCOPES.length })),
      }),
      response: {
        201: Type.Object({
          id: Type.String(),
          name: Type.String(),
          prefix: Type.String(),
          token: Type.String(),
          scopes: Type.Array(Type.String()),
          expiresAt: Type.Union([Type.String(), Type.Null()]),
        }),
        ...errors(400, 401, 403),
      },
    },
  }, async (request, reply) => {
    const scopes: TokenScope[] = request.body.scopes ?? ['*'];
    // A token mints only tokens narrower than itself (a session may mint any).
    if (request.tokenScopes && !scopes.every((sc) => request.tokenScopes!.includes('*') || request.tokenScopes!.includes(sc))) {
      throw new ForbiddenError('A token can only create tokens with scopes it has itself', 'scope_not_allowed');
    }
    const t = await core.users.createToken(request.user!.id, request.body.name, request.body.expiresInDays, scopes);
    return reply.code(201).send({ ...t, expiresAt: t.expiresAt?.toISOString() ?? null });
  });

  app.get('/api/tokens', {
    preHandler: auth.requireUser,
    schema: { response: { 200: Type.Array(TokenView), ...errors(401) } },
  }, async (request) => {
    const rows = await core.users.listTokens(request.user!.id);
    return rows.map((t) => ({
      id: t.id,
      name: t.name,
      prefix: t.prefix,
      scopes: t.scopes,
      createdAt: t.createdAt.toISOString(),
      lastUsedAt: t.lastUsedAt?.toISOString() ?? null,
      expiresAt: t.expiresAt?.toISOString() ?? null,
    }));
  });

  app.delete('/api/tokens/:id', {
    preHandler: auth.requireUser,
    schema: { params: IdParams, response: { 204: Type.Null(), ...errors(400, 401, 403, 404) } },
  }, async (request, reply) => {
    await core.users.revokeToken(request.user!.id, request.params.id);
    return reply.code(204).send(null);
  });
}
