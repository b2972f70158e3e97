import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import helmet, { type HelmetOptions } from 'helmet';

// Every answer carries helmet's security headers. Their values depend only on
// the options, never on the request, so helmet computes them once here and a
// hook copies them onto each answer. (@fastify/helmet built a fresh helmet
// middleware, parsing the CSP directives again, for every request: it showed
// in the chat proxy's CPU profile.)

/** The CSP allows what /docs (Swagger UI) needs; the rest is helmet's defaults. */
export const HELMET_OPTIONS: HelmetOptions = {
  contentSecurityPolicy: { directives: { 'img-src': ["'self'", 'data:'], 'script-src': ["'self'"], 'style-src': ["'self'", "'unsafe-inline'"] } },
};

/** The headers helmet sets for `options`, by running its middleware once against a recorder. */
export function securityHeaders(options: HelmetOptions = HELMET_OPTIONS): Readonly<Record<string, string>> {
  const headers: Record<string, string> = {};
  const recorder = {
    setHeader(name: string, value: unknown) {
      headers[name.toLowerCase()] = String(value);
    },
    removeHeader(name: string) {
      delete headers[name.toLowerCase()];
    },
  };
  let failure: unknown = null;
  let done = false;
  helmet(options)({} as IncomingMessage, recorder as unknown as ServerResponse, (err?: unknown) => {
    failure = err ?? null;
    done = true;
  });
  // helmet's middleware is synchronous; if a version ever is not, fail at start-up rather than send no headers.
  if (!done) throw new Error('helmet did not finish synchronously');
  if (failure) throw failure;
  return Object.freeze(headers);
}

export function installSecurityHeaders(app: FastifyInstance, options: HelmetOptions = HELMET_OPTIONS): void {
  const headers = Object.entries(securityHeaders(options));
  app.addHook('onRequest', (_request, reply, next) => {
    const raw = reply.raw;
    for (const [name, value] of headers) raw.setHeader(name, value);
    next();
  });
}
