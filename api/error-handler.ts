import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify';
import { AppError, MethodNotAllowedError } from '../core/errors.ts';

/** The methods a path may answer; anything else on a known path is 405, not 404. */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

/** The client-visible error body (API.md). */
export function errorBody(code: string, message: string, details?: unknown) {
  return { error: { code, message, details } };
}

// The one place errors become HTTP answers. 5xx details never leave the
// server; they go to the log with the request id.
export function installErrorHandler(app: FastifyInstance): void {
  const pathOf = (request: FastifyRequest) => request.url.split('?')[0];

  /** The methods fastify's own router answers on this concrete path, other than the one asked. */
  function otherMethods(method: string, path: string): string[] {
    return METHODS.filter((m) => m !== method && app.findRoute({ method: m, url: path }) !== null);
  }

  // Unmatched requests are decided here, before body parsing: an undeclared
  // method with a body (QUERY, TRACE…) would otherwise fail content-type
  // checks first and answer 400 instead of 405.
  app.addHook('onRequest', async (request) => {
    if (!request.is404) return;
    const allow = otherMethods(request.method, pathOf(request));
    if (allow.length) throw new MethodNotAllowedError(request.method, pathOf(request), allow);
  });

  app.setNotFoundHandler((request, reply) => {
    const path = pathOf(request);
    // Plugins (static files) also land here for a matched path with nothing behind it: that stays 404.
    if (app.findRoute({ method: request.method, url: path }) === null) {
      const allow = otherMethods(request.method, path);
      if (allow.length) throw new MethodNotAllowedError(request.method, path, allow);
    }
    void reply.code(404).send(errorBody('route_not_found', `No route ${request.method} ${path}`));
  });

  app.setErrorHandler((err: FastifyError & { cause?: unknown }, request, reply) => {
    if (reply.raw.headersSent) {
      // Mid-answer (typically a client gone during a streamed chat): the status
      // is long sent, so there is nothing to say; end the connection.
      if ((err as { code?: string }).code !== 'ERR_STREAM_PREMATURE_CLOSE') request.log.warn({ err }, 'answer failed mid-way');
      reply.raw.destroy();
      return;
    }
    if (err instanceof AppError) {
      if (err.headers) void reply.headers(err.headers);
      return reply.code(err.status).send(errorBody(err.code, err.message, err.details));
    }
    if (err.validation) {
      return reply.code(400).send(errorBody(
        'invalid_input',
        `Invalid ${err.validationContext ?? 'input'}: ${err.message}`,
        err.validation.map((v) => ({ path: v.instancePath, message: v.message, params: v.params })),
      ));
    }
    if ((err as { code?: string }).code === 'P2034') {
      // Serializable transaction lost a race: nothing was written; the caller may retry.
      return reply.code(409).send(errorBody('concurrent_change', 'Another change got there first; try again'));
    }
    const status = err.statusCode ?? 500;
    if (status < 500) {
      const code =
        err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 'body_too_large'
        : err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? 'unsupported_media_type'
        : err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError ? 'invalid_json'
        : status === 429 ? 'rate_limited'
        : 'bad_request';
      return reply.code(status).send(errorBody(code, err.message));
    }
    request.log.error({ err }, 'unhandled error');
    return reply.code(500).send(errorBody('internal_error', 'Something went wrong on our side'));
  });
}

/**
 * Requests node's HTTP parser refuses (bad header bytes, oversized headers,
 * a request too slow to arrive) never reach a route: answer them in the same
 * JSON error shape. Otherwise it is fastify's own handler, step for step.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: import('node:net').Socket): void {
  // A reset connection is already gone: nothing to answer.
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, code, message] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'request_timeout', 'The request took too long to arrive']
    : err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'headers_too_large', 'Request headers too large']
    : [400, 'bad_request', 'Malformed HTTP request'];
  const body = JSON.stringify(errorBody(code, message));
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  }
  socket.destroy(err);
}
