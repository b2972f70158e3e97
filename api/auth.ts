import type { FastifyReply, FastifyRequest } from 'fastify';
import type { User } from '../core/db.ts';
import { ForbiddenError, UnauthorizedError } from '../core/errors.ts';
import type { UserService } from '../core/services/users.service.ts';

export const SESSION_COOKIE = 'hangar_session';
export const CSRF_HEADER = 'x-hangar-csrf';

declare module 'fastify' {
  interface FastifyRequest {
    user: User | null;
    authVia: 'session' | 'token' | null;
    csrfToken: string | null;
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Resolves the caller once per request: cookie session or bearer API token. */
export function createAuth(users: UserService) {
  async function identify(request: FastifyRequest): Promise<void> {
    request.user = null;
    request.authVia = null;
    request.csrfToken = null;
    const header = request.headers.authorization;
    if (header?.startsWith('Bearer ')) {
      const user = await users.resolveToken(header.slice(7).trim());
      if (!user) throw new UnauthorizedError('That API token is not valid', 'invalid_token');
      request.user = user;
      request.authVia = 'token';
      return;
    }
    const cookie = request.cookies?.[SESSION_COOKIE];
    if (cookie) {
      const s = await users.resolveSession(cookie);
      if (s) {
        request.user = s.user;
        request.authVia = 'session';
        request.csrfToken = s.csrfToken;
      }
    }
  }

  /** Signed in, and cookie-authenticated writes carry the CSRF header. */
  async function requireUser(request: FastifyRequest, _reply: FastifyReply): Promise<void> {
    await identify(request);
    if (!request.user) throw new UnauthorizedError();
    if (request.authVia === 'session' && !SAFE_METHODS.has(request.method)) {
      if (request.headers[CSRF_HEADER] !== request.csrfToken) {
        throw new ForbiddenError('Missing or wrong CSRF header (x-hangar-csrf)', 'csrf_failed');
      }
    }
  }

  return {
    identify,
    requireUser,
    /** The one place the admin role is checked. */
    async requireAdmin(request: FastifyRequest, reply: FastifyReply): Promise<void> {
      await requireUser(request, reply);
      if (request.user!.role !== 'admin') throw new ForbiddenError('Admins only', 'admin_required');
    },
  };
}

export type Auth = ReturnType<typeof createAuth>;
