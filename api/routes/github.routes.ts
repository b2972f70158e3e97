import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { SESSION_COOKIE, setSessionCookie } from '../auth.ts';
import { errors } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';

// GitHub sign-in (api/github-oauth.ts does the OAuth 2 part, the GitHub auth
// service decides who may in). Errors answer like OIDC's: JSON, no session.

export async function githubRoutes(fastify: FastifyInstance, { core, github, secureCookies }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

  app.get('/api/auth/github/login', {
    schema: { response: { 302: Type.Null({ description: 'To GitHub\'s authorization page' }), ...errors(404, 503) } },
  }, async (request, reply) => reply.redirect(await github.begin(request, reply), 302));

  app.get('/api/auth/github/callback', {
    schema: {
      querystring: Type.Object({}, { additionalProperties: Type.String({ maxLength: 4096 }) }),
      response: { 302: Type.Null({ description: 'To / with a session cookie' }), ...errors(401, 403, 404, 503) },
    },
  }, async (request, reply) => {
    const { accessToken, settings } = await github.finish(request, reply);
    const who = await core.githubAuth.identify(accessToken);
    const user = await core.githubAuth.signIn(who, settings);
    const old = request.cookies[SESSION_COOKIE];
    if (old) await core.users.revokeSession(old);
    const session = await core.users.createSession(user.id);
    setSessionCookie(request, reply, session, secureCookies);
    return reply.redirect('/', 302);
  });
}
