import type { FastifyInstance } from 'fastify';
import { ValidationError } from '../core/errors.ts';

// Postgres text cannot hold U+0000: a NUL anywhere in the input would turn a
// bad request into a 500 at the first write. Refused here, once for every
// route, before schema validation and before anything reaches a service.

/** JSON-pointer-ish path of the first string (or key) holding a NUL, else null. */
export function findNul(value: unknown, at = '', depth = 0): string | null {
  if (typeof value === 'string') return value.includes('\u0000') ? at || '/' : null;
  // Bodies are size-limited, so depth only bounds pathological nesting.
  if (value === null || typeof value !== 'object' || depth > 64) return null;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const hit = findNul(value[i], `${at}/${i}`, depth + 1);
      if (hit) return hit;
    }
    return null;
  }
  for (const [k, v] of Object.entries(value)) {
    if (k.includes('\u0000')) return `${at}/${encodeURIComponent(k)}`;
    const hit = findNul(v, `${at}/${k}`, depth + 1);
    if (hit) return hit;
  }
  return null;
}

export function installInputGuard(app: FastifyInstance): void {
  app.addHook('preValidation', async (request) => {
    const parts = { body: request.body, querystring: request.query, params: request.params } as const;
    for (const [part, value] of Object.entries(parts)) {
      const path = findNul(value);
      if (path) {
        throw new ValidationError(`Invalid ${part}: NUL characters (\\u0000) are not accepted`, [{ path, message: 'must not contain U+0000' }]);
      }
    }
  });
}
