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
    tokenScopes: string[] | null;
    csrfToken: string | null;
  }
}

/** The session cookie: HttpOnly, SameSite=Lax, Secure in production or behind TLS. */
export function setSessionCookie(
  request: FastifyRequest,
  reply: FastifyReply,
  session: { token: string; expiresAt: Date },
  secureCookies: boolean,
): void {
  reply.setCookie(SESSION_COOKIE, session.token, {
    path: '/',
    httpOnly: true,
    sameSite: 'lax',
    secure: secureCookies || request.protocol === 'https',
    expires: session.expiresAt,
  });
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

// Which token scope each part of the API needs: one table, checked in one
// place, first matching prefix wins, and it denies by default: a route it does
// not name (onboarding, whatever comes next) needs a full-access token ('*').
// A workspace's agent goes with `agent` (start, stop, chat) and its providers
// and config with `providers`, as for your own; the rest of workspaces
// (members, invites, update config) needs `workspaces`.
const ANY = 'any';
const SCOPE_BY_PREFIX: Array<[string, string]> = [
  ['/api/admin/', 'admin'],
  ['/metrics', 'admin'],
  ['/api/me/providers', 'providers'],
  ['/api/me/agent-config', 'providers'],
  ['/api/me/agent', 'agent'],
  // A chat client may read the budget it chats against.
  ['/api/me/usage', 'agent'],
  ['/api/chat', 'agent'],
  ['/api/tokens', 'tokens'],
  ['/api/workspaces/:slug/agent-config', 'providers'],
  ['/api/workspaces/:slug/providers', 'providers'],
  ['/api/workspaces/:slug/agent', 'agent'],
  ['/api/workspaces', 'workspaces'],
  ['/api/invites/', 'workspaces'],
  ['/api/me/invites', 'workspaces'],
  // Who the token belongs to: every token may ask.
  ['/api/auth/me', ANY],
];

/** The scope a route needs; '*' for every route the table does not name. */
function requiredScope(routeUrl: string): string {
  return SCOPE_BY_PREFIX.find(([prefix]) => routeUrl.startsWith(prefix))?.[1] ?? '*';
}

/** Whether a token with `scopes` may call a route that needs `scope`. */
function scopeAllows(scopes: readonly string[], scope: string): boolean {
  return scope === ANY || scopes.includes('*') || scopes.includes(scope);
}

/** Resolves the caller once per request: cookie session or bearer API token. */
export function createAuth(users: UserService) {
  async function identify(request: FastifyRequest): Promise<void> {
    request.user = null;
    request.authVia = null;
    request.csrfToken = null;
    request.tokenScopes = null;
    const header = request.headers.authorization;
    if (header?.startsWith('Bearer ')) {
      const resolved = await users.resolveToken(header.slice(7).trim());
      if (!resolved) throw new UnauthorizedError('That API token is not valid', 'invalid_token');
      request.user = resolved.user;
      request.tokenScopes = resolved.scopes;
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
    // The matched route, never the raw URL: encoding tricks cannot pick another row of the table.
    const scope = requiredScope(request.routeOptions.url ?? '');
    if (request.tokenScopes && !scopeAllows(request.tokenScopes, scope)) {
      throw new ForbiddenError(scope === '*' ? 'This route needs a full-access API token' : `This API token lacks the "${scope}" scope`, 'insufficient_scope');
    }
    if (request.authVia === 'session' && !SAFE_METHODS.has(request.method)) {
      if (request.headers[CSRF_HEADER] !== request.csrfToken) {
        throw new ForbiddenError('Missing or wrong CSRF header (x-hangar-csrf)', 'csrf_failed');
      }
    }
  }

  /**
   * An admin acting with admin rights: a session, or a token whose scopes
   * include `admin` (or everything). Never throws: for answers that are
   * merely richer for admins (readyz details).
   */
  async function isAdminCaller(request: FastifyRequest): Promise<boolean> {
    try {
      await identify(request);
    } catch {
      return false;
    }
    if (request.user?.role !== 'admin') return false;
    return !request.tokenScopes || request.tokenScopes.includes('*') || request.tokenScopes.includes('admin');
  }

  return {
    identify,
    requireUser,
    isAdminCaller,
    /** The one place the admin role is checked. */
    async requireAdmin(request: FastifyRequest, reply: FastifyReply): Promise<void> {
      await requireUser(request, reply);
      if (request.user!.role !== 'admin') throw new ForbiddenError('Admins only', 'admin_required');
    },
  };
}

export type Auth = ReturnType<typeof createAuth>;
