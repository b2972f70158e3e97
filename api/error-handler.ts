import type { FastifyError, FastifyInstance } from 'fastify';
import { AppError } from '../core/errors.ts';

// The one place errors become HTTP answers. 5xx details never leave the
// server; they go to the log with the request id.
export function installErrorHandler(app: FastifyInstance): void {
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({ error: { code: 'route_not_found', message: `No route ${request.method} ${request.url.split('?')[0]}` } });
  });

  app.setErrorHandler((err: FastifyError & { cause?: unknown }, request, reply) => {
    if (err instanceof AppError) {
      if (err.headers) void reply.headers(err.headers);
      return reply.code(err.status).send({ error: { code: err.code, message: err.message, details: err.details } });
    }
    if (err.validation) {
      return reply.code(400).send({
        error: {
          code: 'invalid_input',
          message: `Invalid ${err.validationContext ?? 'input'}: ${err.message}`,
          details: err.validation.map((v) => ({ path: v.instancePath, message: v.message, params: v.params })),
        },
      });
    }
    if ((err as { code?: string }).code === 'P2034') {
      // Serializable transaction lost a race: nothing was written; the caller may retry.
      return reply.code(409).send({ error: { code: 'concurrent_change', message: 'Another change got there first; try again' } });
    }
    const status = err.statusCode ?? 500;
    if (status < 500) {
      const code =
        err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 'body_too_large'
        : err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? 'unsupported_media_type'
        : err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError ? 'invalid_json'
        : status === 429 ? 'rate_limited'
        : 'bad_request';
      return reply.code(status).send({ error: { code, message: err.message } });
    }
    request.log.error({ err }, 'unhandled error');
    return reply.code(500).send({ error: { code: 'internal_error', message: 'Something went wrong on our side' } });
  });
}
