import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errors, Nullable, strict } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';

// Sign-in settings after onboarding (core/services/sign-in-settings.service.ts):
// OIDC and GitHub, each set, changed, tested and removed here; every save
// and removal is audited (never with a secret). The sign-in routes read them
// per sign-in, so nothing needs a restart.

const OidcBody = strict({
  issuerUrl: Type.String({ pattern: '^https?://[^\\s]+$', maxLength: 2000 }),
  clientId: Type.String({ minLength: 1, maxLength: 500 }),
  // RFC 6749's client secret: printable ASCII (VSCHAR).
  clientSecret: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, pattern: '^[\\x20-\\x7E]+$' })),
});
const GithubBody = strict({
  clientId: Type.String({ minLength: 1, maxLength: 200, pattern: '^[A-Za-z0-9._-]+$' }),
  // GitHub's secrets are hex; the OAuth client library refuses anything but printable ASCII.
  clientSecret: Type.Optional(Type.String({ minLength: 1, maxLength: 500, pattern: '^[\\x21-\\x7E]+$' })),
  // GitHub's own rule for organisation names.
  allowedOrg: Type.String({ minLength: 1, maxLength: 39, pattern: '^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$' }),
});
const SettingsView = Type.Object({
  oidc: Nullable(Type.Object({ issuerUrl: Type.String(), clientId: Type.String(), clientSecretSet: Type.Boolean() })),
  github: Nullable(Type.Object({ clientId: Type.String(), allowedOrg: Type.String(), clientSecretSet: Type.Boolean() })),
  oidcRedirectUri: Type.String(),
  githubCallbackUrl: Type.String(),
  githubOauthUrl: Type.String(),
  githubApiUrl: Type.String(),
});
const TestResult = Type.Object({
  ok: Type.Boolean(),
  checks: Type.Array(Type.Object({ name: Type.String(), ok: Nullable(Type.Boolean()), detail: Type.String() })),
});

export async function adminSignInRoutes(fastify: FastifyInstance, { core, auth }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.addHook('preHandler', auth.requireAdmin);
  const svc = core.signInSettings;
  // An optional body: none tests what is stored.
  const optionalBody = async (request: { body: unknown }) => void (request.body ??= null);

  app.get('/api/admin/auth/settings', { schema: { response: { 200: SettingsView, ...errors(401, 403) } } }, () => svc.view());

  app.put('/api/admin/auth/oidc', {
    schema: { body: OidcBody, response: { 200: SettingsView, ...errors(400, 401, 403) } },
  }, async (request) => {
    const before = (await svc.view()).oidc;
    await svc.saveOidc(request.body);
    const after = (await svc.view()).oidc;
    await core.audit.record({ actorId: request.user!.id, action: 'auth.oidc.save', target: 'auth:oidc', before, after: { ...after, secretChanged: Boolean(request.body.clientSecret) } });
    return svc.view();
  });

  app.delete('/api/admin/auth/oidc', { schema: { response: { 204: Type.Null(), ...errors(401, 403) } } }, async (request, reply) => {
    const before = (await svc.view()).oidc;
    if (await svc.removeOidc()) await core.audit.record({ actorId: request.user!.id, action: 'auth.oidc.remove', target: 'auth:oidc', before });
    return reply.code(204).send(null);
  });

  app.post('/api/admin/auth/oidc/test', {
    preValidation: optionalBody,
    schema: { body: Nullable(OidcBody), response: { 200: TestResult, ...errors(400, 401, 403, 404) } },
  }, (request) => svc.testOidc(request.body ?? undefined));

  app.put('/api/admin/auth/github', {
    schema: { body: GithubBody, response: { 200: SettingsView, ...errors(400, 401, 403) } },
  }, async (request) => {
    const before = (await svc.view()).github;
    await svc.saveGithub(request.body);
    const after = (await svc.view()).github;
    await core.audit.record({ actorId: request.user!.id, action: 'auth.github.save', target: 'auth:github', before, after: { ...after, secretChanged: Boolean(request.body.clientSecret) } });
    return svc.view();
  });

  app.delete('/api/admin/auth/github', { schema: { response: { 204: Type.Null(), ...errors(401, 403) } } }, async (request, reply) => {
    const before = (await svc.view()).github;
    if (await svc.removeGithub()) await core.audit.record({ actorId: request.user!.id, action: 'auth.github.remove', target: 'auth:github', before });
    return reply.code(204).send(null);
  });

  app.post('/api/admin/auth/github/test', {
    preValidation: optionalBody,
    schema: { body: Nullable(GithubBody), response: { 200: TestResult, ...errors(400, 401, 403, 404) } },
  }, (request) => svc.testGithub(request.body ?? undefined));
}
