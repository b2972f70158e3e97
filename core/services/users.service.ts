import { randomToken, sha256 } from '../crypto.ts';
import { asSystem, asUser, pageMeta, type Db, type Tx, type User } from '../db.ts';
import { ConflictError, ForbiddenError, NotFoundError, UnauthorizedError, ValidationError } from '../errors.ts';
import type { LookupCache } from './lookup-cache.service.ts';
import { hashPassword, verifyPassword } from './passwords.service.ts';
/** What an API token may be limited to; '*' is everything its owner may do. */
export const TOKEN_SCOPES = ['*', 'agent', 'providers', 'tokens', 'workspaces', 'admin'] as const;
export type TokenScope = (typeof TOKEN_SCOPES)[number];
const TOKEN_PREFIX = 'hgr_';
// A hash to compare against when the user is unknown, so both failures take as long
// (a fixed bcrypt hash of a random string at the same cost, made once).
const DUMMY_HASH = '$2b$12$2Rr/fTTzsLXdLZmMbDJqq..V.jLAK0RqurH/qLOX/QxvBgJXFb78i';

export function toPublicUser(u: User) {
  return {
    id: u.id,
    email: u.email,
    username: u.username,
    displayName: u.displayName,
    role: u.role,
    authSource: u.authSource,
  };
}

/** What admins see of a user: never a password hash or anything of the user's data. */
export function toAdminUserView(u: User) {
  return {
    ...toPublicUser(u),
    status: u.status,
    createdAt: u.createdAt.toISOString(),
    deactivatedAt: u.deactivatedAt?.toISOString() ?? null,
    suspendedAt: u.suspendedAt?.toISOString() ?? null,
  };
}

/** A token as its owner's admin sees it: names, scopes, use — never the secret or its hash. */
export function toTokenView(t: { id: string; name: string; prefix: string; scopes: string[]; createdAt: Date; lastUsedAt: Date | null; expiresAt: Date | null; revokedAt?: Date | null }) {
  return {
    id: t.id,
    name: t.name,
    prefix: t.prefix,
    scopes: t.scopes,
    createdAt: t.createdAt.toISOString(),
    lastUsedAt: t.lastUsedAt?.toISOString() ?? null,
    expiresAt: t.expiresAt?.toISOString() ?? null,
    revokedAt: t.revokedAt?.toISOString() ?? null,
  };
}

export interface CreateUserInput {
  username?: string;
  email?: string;
  displayName?: string;
  password?: string;
  role?: 'admin' | 'member';
  authSource?: 'local' | 'breakglass' | 'oidc';
  invitedById?: string;
  /** Already hashed (the onboarding workflow never sees a plaintext password). */
  passwordHash?: string;
}

export function createUserService({ db, sessionTtlHours, cache }: { db: Db; sessionTtlHours: number; cache?: LookupCache }) {
  /** lastUsedAt is advisory: at most one write a minute per token, off the request path. */
  const noteUse = (t: { tokenId: string; userId: string; lastUsedAt: Date | null }) => {
    if (t.lastUsedAt && Date.now() - t.lastUsedAt.getTime() <= 60_000) return false;
    void asUser(db, t.userId, (tx) => tx.apiToken.update({ where: { id: t.tokenId }, data: { lastUsedAt: new Date() } })).catch(() => undefined);
    return true;
  };

  return {
    async create(input: CreateUserInput): Promise<User> {
      if (!input.username && !input.email) throw new ValidationError('username or email is required');
      if (input.password !== undefined && input.password.length < 12) {
        throw new ValidationError('password must be at least 12 characters', { field: 'password' });
      }
      try {
        return await db.user.create({
          data: {
            username: input.username?.toLowerCase(),
            email: input.email?.toLowerCase(),
            displayName: input.displayName ?? input.username ?? input.email ?? 'user',
            role: input.role ?? 'member',
            authSource: input.authSource ?? 'local',
            passwordHash: input.passwordHash ?? (input.password ? await hashPassword(input.password) : null),
            invitedById: input.invitedById,
            invitedAt: input.invitedById ? new Date() : undefined,
          },
        });
      } catch (err) {
        if ((err as { code?: string }).code === 'P2002') throw new ConflictError('That username or email is taken', 'user_exists');
        throw err;
      }
    },

    /** By username or email, as people type either to sign in. */
    findByLogin(login: string): Promise<User | null> {
      const key = login.toLowerCase();
      return db.user.findFirst({ where: { OR: [{ username: key }, { email: key }] } });
    },

    /** One answer for unknown user and wrong password. */
    async authenticate(login: string, password: string): Promise<User> {
      const user = await this.findByLogin(login);
      const ok = await verifyPassword(password, user?.passwordHash ?? DUMMY_HASH);
      if (!user || !user.passwordHash || !ok || user.status === 'deactivated') {
        throw new UnauthorizedError('Wrong username or password', 'invalid_credentials');
      }
      // Said only to someone who knows the password: it reveals nothing to a guesser.
      if (user.status === 'suspended') throw new ForbiddenError('This account is suspended; ask an admin to reactivate it', 'account_suspended');
      return user;
    },

    async createSession(userId: string): Promise<{ token: string; csrfToken: string; expiresAt: Date }> {
      const token = randomToken(32);
      const csrfToken = randomToken(24);
      const expiresAt = new Date(Date.now() + sessionTtlHours * 3600_000);
      await asUser(db, userId, (tx) =>
        tx.session.create({ data: { tokenHash: sha256(token), userId, csrfToken, expiresAt, lastSeenAt: new Date() } }),
      );
      return { token, csrfToken, expiresAt };
    },

    async resolveSession(token: string): Promise<{ user: User; csrfToken: string } | null> {
      const hash = sha256(token);
      const hit = cache?.getSession(hash);
      if (hit) return hit.expiresAt < new Date() ? null : { user: hit.user, csrfToken: hit.csrfToken };
      const mark = cache?.mark() ?? 0;
      // By hash, before anyone is known: declared system work.
      const s = await asSystem(db, (tx) => tx.session.findUnique({ where: { tokenHash: hash }, include: { user: true } }));
      if (!s || s.revokedAt || s.expiresAt < new Date() || s.user.status !== 'active') return null;
      cache?.setSession(hash, { user: s.user, csrfToken: s.csrfToken, expiresAt: s.expiresAt }, mark);
      return { user: s.user, csrfToken: s.csrfToken };
    },

    async revokeSession(token: string): Promise<void> {
      const tokenHash = sha256(token);
      await asSystem(db, (tx) => tx.session.updateMany({ where: { tokenHash, revokedAt: null }, data: { revokedAt: new Date() } }));
      // This process at once; the others when the trigger's notification lands.
      cache?.apply({ t: 'sessions', tokenHash });
    },

    async createToken(userId: string, name: string, expiresInDays?: number, scopes: TokenScope[] = ['*']) {
      const owner = await db.user.findUnique({ where: { id: userId } });
      if (!owner) throw new NotFoundError('User');
      // A token can be narrower than its owner, never wider.
      if (owner.role !== 'admin' && scopes.some((sc) => sc === 'admin')) {
        throw new ValidationError('Only admins can create tokens with the admin scope', { field: 'scopes' }, 'scope_not_allowed');
      }
      const prefix = randomToken(6).replace(/[-_]/g, 'x').slice(0, 8);
      const token = `${TOKEN_PREFIX}${prefix}_${randomToken(32)}`;
      const row = await asUser(db, userId, (tx) => tx.apiToken.create({
        data: {
          userId,
          name,
          prefix: `${TOKEN_PREFIX}${prefix}`,
          tokenHash: sha256(token),
          scopes: [...new Set(scopes)],
          expiresAt: expiresInDays ? new Date(Date.now() + expiresInDays * 86_400_000) : null,
        },
      }));
      return { id: row.id, name: row.name, prefix: row.prefix, token, expiresAt: row.expiresAt, scopes: row.scopes };
    },

    async resolveToken(token: string): Promise<{ user: User; scopes: string[] } | null> {
      if (!token.startsWith(TOKEN_PREFIX)) return null;
      const hash = sha256(token);
      const hit = cache?.getToken(hash);
      if (hit) {
        if (hit.expiresAt && hit.expiresAt < new Date()) return null;
        if (noteUse({ tokenId: hit.tokenId, userId: hit.user.id, lastUsedAt: hit.lastUsedAt })) hit.lastUsedAt = new Date();
        return { user: hit.user, scopes: hit.scopes };
      }
      const mark = cache?.mark() ?? 0;
      const t = await asSystem(db, (tx) => tx.apiToken.findUnique({ where: { tokenHash: hash }, include: { user: true } }));
      if (!t || t.revokedAt || (t.expiresAt && t.expiresAt < new Date()) || t.user.status !== 'active') return null;
      const used = noteUse({ tokenId: t.id, userId: t.userId, lastUsedAt: t.lastUsedAt });
      cache?.setToken(hash, { tokenId: t.id, user: t.user, scopes: t.scopes, expiresAt: t.expiresAt, lastUsedAt: used ? new Date() : t.lastUsedAt }, mark);
      return { user: t.user, scopes: t.scopes };
    },

    listTokens(userId: string) {
      return asUser(db, userId, (tx) => tx.apiToken.findMany({ where: { userId, revokedAt: null }, orderBy: { createdAt: 'desc' } }));
    },

    async list(page: number, limit: number) {
      const [total, rows] = await Promise.all([
        db.user.count(),
        db.user.findMany({ orderBy: [{ createdAt: 'asc' }, { id: 'asc' }], skip: (page - 1) * limit, take: limit }),
      ]);
      return { data: rows, meta: pageMeta(total, page, limit) };
    },

    async get(id: string): Promise<User> {
      const u = await db.user.findUnique({ where: { id } });
      if (!u) throw new NotFoundError('User');
      return u;
    },

    /** Role and name changes, never leaving the instance without an active admin. */
    async update(actorId: string, id: string, patch: { displayName?: string; role?: 'admin' | 'member' }): Promise<{ before: User; after: User }> {
      return db.$transaction(async (tx) => {
        const before = await tx.user.findUnique({ where: { id } });
        if (!before) throw new NotFoundError('User');
        if (before.role === 'admin' && patch.role === 'member') await assertAnotherAdmin(tx, id);
        const after = await tx.user.update({ where: { id }, data: patch });
        return { before, after };
      }, { isolationLevel: 'Serializable' }).then((r) => {
        cache?.apply({ t: 'users', id });
        return r;
      });
    },

    /** Deactivation ends every session and token at once. */
    async deactivate(actorId: string, id: string): Promise<{ before: User; after: User }> {
      if (actorId === id) throw new ConflictError('You cannot deactivate yourself', 'cannot_deactivate_self');
      return db.$transaction(async (tx) => {
        const before = await tx.user.findUnique({ where: { id } });
        if (!before) throw new NotFoundError('User');
        if (before.role === 'admin' && before.status === 'active') await assertAnotherAdmin(tx, id);
        const now = new Date();
        // Ending another user's sessions and tokens is system work.
        await tx.$queryRaw`SELECT set_config('app.system', 'on', true)`;
        const after = await tx.user.update({ where: { id }, data: { status: 'deactivated', deactivatedAt: before.deactivatedAt ?? now } });
        await tx.session.updateMany({ where: { userId: id, revokedAt: null }, data: { revokedAt: now } });
        await tx.apiToken.updateMany({ where: { userId: id, revokedAt: null }, data: { revokedAt: now } });
        return { before, after };
      }, { isolationLevel: 'Serializable' }).then((r) => {
        // This process at once (after the commit); the others when the triggers' notifications land.
        cache?.apply({ t: 'users', id, status: r.after.status });
        return r;
      });
    },

    /**
     * Suspension is temporary and takes nothing away: sessions end (a
     * reactivated user signs in again), tokens are refused while it lasts and
     * work again after, nothing is deleted. The caller stops the agent.
     */
    async suspend(actorId: string, id: string): Promise<{ before: User; after: User }> {
      if (actorId === id) throw new ConflictError('You cannot suspend yourself', 'cannot_suspend_self');
      return db.$transaction(async (tx) => {
        const before = await tx.user.findUnique({ where: { id } });
        if (!before) throw new NotFoundError('User');
        if (before.status === 'deactivated') throw new ConflictError('This user is deactivated', 'user_deactivated');
        if (before.status === 'suspended') return { before, after: before };
        if (before.role === 'admin') await assertAnotherAdmin(tx, id);
        await tx.$queryRaw`SELECT set_config('app.system', 'on', true)`;
        const now = new Date();
        const after = await tx.user.update({ where: { id }, data: { status: 'suspended', suspendedAt: now } });
        await tx.session.updateMany({ where: { userId: id, revokedAt: null }, data: { revokedAt: now } });
        return { before, after };
      }, { isolationLevel: 'Serializable' }).then((r) => {
        // This process at once (after the commit); the others when the triggers' notifications land.
        cache?.apply({ t: 'users', id, status: r.after.status });
        return r;
      });
    },

    /** Back from a suspension (never from a deactivation: that one revoked everything). */
    async reactivate(id: string): Promise<{ before: User; after: User }> {
      return db.$transaction(async (tx) => {
        const before = await tx.user.findUnique({ where: { id } });
        if (!before) throw new NotFoundError('User');
        if (before.status === 'deactivated') throw new ConflictError('A deactivated user cannot be reactivated; invite them again', 'user_deactivated');
        if (before.status === 'active') return { before, after: before };
        const after = await tx.user.update({ where: { id }, data: { status: 'active', suspendedAt: null } });
        return { before, after };
      }).then((r) => {
        cache?.apply({ t: 'users', id, status: r.after.status });
        return r;
      });
    },

    /**
     * A signed-in user's own password: the current one is checked first, and
     * every other session of theirs ends (`keepSessionToken` is the one in use).
     */
    async changePassword(userId: string, current: string, next: string, keepSessionToken?: string): Promise<void> {
      const user = await this.get(userId);
      if (!user.passwordHash) throw new ConflictError('This account signs in through single sign-on and has no password', 'no_password');
      if (!(await verifyPassword(current, user.passwordHash))) throw new UnauthorizedError('The current password is wrong', 'invalid_credentials');
      await this.setPassword(userId, next, { keepSessionToken });
    },

    /**
     * Sets a password and ends the user's sessions (all but `keepSessionToken`).
     * For a password change, a reset link and the CLI's reset of the breakglass.
     */
    async setPassword(userId: string, password: string, opts: { keepSessionToken?: string; tx?: Tx; passwordHash?: string } = {}): Promise<void> {
      if (password.length < 12) throw new ValidationError('password must be at least 12 characters', { field: 'password' });
      const passwordHash = opts.passwordHash ?? (await hashPassword(password));
      const keep = opts.keepSessionToken ? sha256(opts.keepSessionToken) : undefined;
      const write = async (tx: Tx) => {
        await tx.$queryRaw`SELECT set_config('app.system', 'on', true)`;
        await tx.user.update({ where: { id: userId }, data: { passwordHash } });
        await tx.session.updateMany({ where: { userId, revokedAt: null, ...(keep ? { tokenHash: { not: keep } } : {}) }, data: { revokedAt: new Date() } });
      };
      if (opts.tx) await write(opts.tx);
      else await db.$transaction(write);
      // Ended sessions leave this process's lookups at once (inside a caller's
      // transaction: the triggers' notifications after its commit).
      if (!opts.tx) cache?.apply({ t: 'users', id: userId });
    },

    /** Every token of a user, revoked ones too (the admin's view of a user). */
    allTokens(userId: string, limit = 100) {
      return asSystem(db, (tx) => tx.apiToken.findMany({ where: { userId }, orderBy: { createdAt: 'desc' }, take: limit }));
    },

    /** An admin revoking one of a user's tokens; 404 when it is not that user's. */
    async revokeTokenOf(userId: string, tokenId: string) {
      return asSystem(db, async (tx) => {
        const t = await tx.apiToken.findFirst({ where: { id: tokenId, userId } });
        if (!t) throw new NotFoundError('Token');
        if (t.revokedAt) return t;
        return tx.apiToken.update({ where: { id: t.id }, data: { revokedAt: new Date() } });
      });
    },

    async revokeToken(userId: string, id: string): Promise<void> {
      const { count } = await asUser(db, userId, (tx) =>
        tx.apiToken.updateMany({ where: { id, userId, revokedAt: null }, data: { revokedAt: new Date() } }),
      );
      cache?.apply({ t: 'api_tokens', id });
      if (count === 0) throw new NotFoundError('Token');
    },
  };
}

async function assertAnotherAdmin(tx: Tx, exceptId: string): Promise<void> {
  const others = await tx.user.count({ where: { role: 'admin', status: 'active', id: { not: exceptId } } });
  if (others === 0) throw new ConflictError('This would leave no active admin', 'last_admin');
}

export type UserService = ReturnType<typeof createUserService>;
