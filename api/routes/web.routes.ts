import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { repoRoot } from '../../core/runtime/paths.runtime.ts';
import { errors } from '../schemas.ts';
import type { RouteDeps } from '../app.ts';

// The web UI: plain ES modules (Preact + htm, no build step) served from web/,
// and the little the UI needs to know before anyone signs in.

const webRoot = path.join(repoRoot, 'web');
const require = createRequire(import.meta.url);
/** Preact, its hooks and htm in one module (~13 kB, ~5.5 kB gzipped): the only third-party script. */
const VENDOR = path.join(path.dirname(require.resolve('htm/preact')), 'standalone.module.js');
/**
 * Markdown for agents' answers: marked (parser) and DOMPurify (sanitiser),
 * both shipped by their packages as ES modules, served as they are.
 */
const MARKDOWN_VENDOR = {
  '/ui/vendor/marked.js': path.join(path.dirname(require.resolve('marked')), 'marked.esm.js'),
  '/ui/vendor/purify.js': path.join(path.dirname(require.resolve('dompurify')), 'purify.es.mjs'),
};
/** Source maps are not shipped with the UI: drop the comment that points at one. */
const withoutSourceMap = (code: string) => code.replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n');

export async function webRoutes(fastify: FastifyInstance, { core, auth }: RouteDeps) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const vendor = await readFile(VENDOR, 'utf8');
  const index = await readFile(path.join(webRoot, 'index.html'), 'utf8');

  await app.register(fastifyStatic, { root: webRoot, prefix: '/ui/', index: false, wildcard: true, cacheControl: true, maxAge: 0 });

  app.get('/ui/vendor/preact-htm.js', { schema: { hide: true } }, (_request, reply) =>
    reply.type('text/javascript; charset=utf-8').header('cache-control', 'public, max-age=3600').send(vendor));
  for (const [url, file] of Object.entries(MARKDOWN_VENDOR)) {
    const code = withoutSourceMap(await readFile(file, 'utf8'));
    app.get(url, { schema: { hide: true } }, (_request, reply) =>
      reply.type('text/javascript; charset=utf-8').header('cache-control', 'public, max-age=3600').send(code));
  }

  // One page: every path the UI routes to is a hash (#/agent), so only / serves the shell.
  app.get('/', { schema: { hide: true } }, (_request, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(index));

  // What the UI needs before anyone signs in; `signedIn` spares it a 401 from /api/auth/me.
  app.get('/api/auth/config', {
    preHandler: auth.identify,
    schema: {
      response: {
        200: Type.Object({ oidc: Type.Boolean(), github: Type.Boolean(), signedIn: Type.Boolean(), temporalUiUrl: Type.String(), temporalNamespace: Type.String() }),
        ...errors(401),
      },
    },
  }, async (request) => {
    const [oidc, github] = await Promise.all([core.settings.oidc(), core.settings.github()]);
    return { oidc: Boolean(oidc), github: Boolean(github), signedIn: Boolean(request.user), temporalUiUrl: core.config.temporalUiUrl, temporalNamespace: core.config.temporalNamespace };
  });
}
