import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { UnauthorizedError } from '../../core/errors.ts';
import type { OidcLoginState } from '../../core/services/oidc.service.ts';
import { SESSION_COOKIE, setSessionCookie } from '../auth.ts';
import { errors } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';

const LOGIN_COOKIE = 'hangar_oidc';
const COOKIE_PATH = '/api/auth/oidc';

export async function oidcRoutes(fastify: FastifyInstance, { core, oidc, secureCookies }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const base = (core.config.publicUrl ?? `http://localhost:${core.config.port}`).replace(/\/$/, '');
  const redirectUri = `${base}/api/auth/oidc/callback`;

  app.get('/api/auth/oidc/login', { schema: { response: { 302: Type.Null({ description: 'To the issuer\'s authorization endpoint' }), ...errors(404, 503) } } }, async (request, reply) => {
    const { url, login } = await oidc.begin(redirectUri);
    // Signed, short-lived and bound to this browser: the callback must present the same state.
    reply.setCookie(LOGIN_COOKIE, JSON.stringify(login), {
      path: COOKIE_PATH,
      httpOnly: true,
      sameSite: 'lax',
      secure: secureCookies || request.protocol === 'https',
      signed: true,
      maxAge: 600,
    });
    return reply.redirect(url, 302);
  });

  app.get('/api/auth/oidc/callback', {
    schema: {
      querystring: Type.Object({}, { additionalProperties: Type.String({ maxLength: 4096 }) }),
      response: { 302: Type.Null({ description: 'To / with a session cookie' }), ...errors(400, 401, 404, 503) },
    },
  }, async (request, reply) => {
    const raw = request.cookies[LOGIN_COOKIE];
    const unsigned = raw ? request.unsignCookie(raw) : null;
    reply.clearCookie(LOGIN_COOKIE, { path: COOKIE_PATH });
    if (!unsigned?.valid || !unsigned.value) throw new UnauthorizedError('Sign-in expired or tampered with; start again', 'oidc_failed');
    let login: OidcLoginState;
    try {
      login = JSON.parse(unsigned.value) as OidcLoginState;
    } catch {
      throw new UnauthorizedError('Sign-in state unreadable; start again', 'oidc_failed');
    }
    const user = await oidc.finish(new URL(request.url, base), login);
    const old = request.cookies[SESSION_COOKIE];
    if (old) await core.users.revokeSession(old);
    const session = await core.users.createSession(user.id);
    setSessionCookie(request, reply, session, secureCookies);
    return reply.redirect('/', 302);
  });
}
