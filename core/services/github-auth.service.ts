import type { HangarConfig } from '../config.ts';
import type { Db, User } from '../db.ts';
import { ForbiddenError, UnauthorizedError, UnavailableError } from '../errors.ts';
import { isUnclaimedInvitation } from './oidc.service.ts';
import type { GithubSettings } from './settings.service.ts';

// Who a GitHub sign-in is, and whether they may in. The OAuth 2 dance itself
// (state, PKCE, the code exchange) is @fastify/oauth2's, in the API
// (api/github-oauth.ts); this takes the access token it ends with.
//
// Accounts are keyed by GitHub's numeric user id (`github:<id>`), never by
// login (renamable) or email. Rules:
// - a new account is made only for a member of the allowed organisation;
// - an admin's invitation (an account with this email, no password, never
//   claimed) is claimed by a GitHub account whose primary email is verified
//   and equal to it: the admin vouched for that person, so the organisation
//   is not asked;
// - nothing else is ever linked by email: a password account or one linked
//   to another identity with the same address gets a new, email-less account;
// - every later sign-in asks the organisation again (leaving it ends access),
//   unless the account came from an invitation.

const GITHUB_TIMEOUT_MS = 10_000;
/** 100 organisations a page; nobody is in more than 1,000 that matter here. */
const MAX_ORG_PAGES = 10;

export interface GithubIdentity {
  id: number;
  login: string;
  name: string | null;
  /** The primary email, when GitHub says it is verified. */
  email: string | null;
  orgs: string[];
}

export function createGithubAuthService({ db, config }: { db: Db; config: Pick<HangarConfig, 'githubApiUrl'> }) {
  const api = config.githubApiUrl.replace(/\/$/, '');

  async function get<T>(path: string, token: string): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${api}${path}`, {
        headers: { authorization: `Bearer ${token}`, accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28', 'user-agent': 'Hangar' },
        redirect: 'error',
        signal: AbortSignal.timeout(GITHUB_TIMEOUT_MS),
      });
    } catch (err) {
      throw new UnavailableError(`GitHub's API did not answer: ${(err as Error).message}`, 'github_unavailable');
    }
    if (res.status === 401 || res.status === 403) throw new UnauthorizedError(`GitHub refused the sign-in's token for ${path} (${res.status})`, 'github_failed');
    if (!res.ok) throw new UnavailableError(`GitHub's API answered ${res.status} for ${path}`, 'github_unavailable');
    return (await res.json()) as T;
  }

  return {
    /** /user, /user/emails and /user/orgs, with the sign-in's access token. */
    async identify(token: string): Promise<GithubIdentity> {
      const me = await get<{ id?: unknown; login?: unknown; name?: unknown }>('/user', token);
      if (typeof me.id !== 'number' || typeof me.login !== 'string') throw new UnauthorizedError('GitHub did not say who signed in', 'github_failed');
      const emails = await get<Array<{ email: string; primary: boolean; verified: boolean }>>('/user/emails', token);
      const primary = Array.isArray(emails) ? emails.find((e) => e.primary && e.verified && typeof e.email === 'string') : undefined;
      const orgs: string[] = [];
      for (let page = 1; page <= MAX_ORG_PAGES; page++) {
        const batch = await get<Array<{ login: string }>>(`/user/orgs?per_page=100&page=${page}`, token);
        if (!Array.isArray(batch)) break;
        orgs.push(...batch.map((o) => String(o.login).toLowerCase()));
        if (batch.length < 100) break;
      }
      return { id: me.id, login: me.login, name: typeof me.name === 'string' && me.name ? me.name : null, email: primary?.email.toLowerCase() ?? null, orgs };
    },

    /** The Hangar account for a GitHub identity under these settings, made or claimed if the rules allow. */
    async signIn(who: GithubIdentity, settings: Pick<GithubSettings, 'allowedOrg'>): Promise<User> {
      const org = settings.allowedOrg.toLowerCase();
      const member = who.orgs.includes(org);
      const username = `github:${who.id}`;
      const refuse = () => new ForbiddenError(`Only members of the GitHub organisation ${settings.allowedOrg} may sign in (or people an admin invited)`, 'github_org_required');
      const admit = (u: User): User => {
        if (u.status === 'suspended') throw new ForbiddenError('This account is suspended; ask an admin to reactivate it', 'account_suspended');
        if (u.status !== 'active') throw new UnauthorizedError('This account is deactivated', 'account_deactivated');
        if (!member && !u.invitedById) throw refuse();
        return u;
      };
      const existing = await db.user.findUnique({ where: { username } });
      if (existing) return admit(existing);
      const emailTaken = who.email ? await db.user.findUnique({ where: { email: who.email } }) : null;
      if (emailTaken && isUnclaimedInvitation(emailTaken)) {
        // Conditional on still being unclaimed: two first sign-ins cannot both win.
        const { count } = await db.user.updateMany({ where: { id: emailTaken.id, username: null, authSource: 'local', passwordHash: null }, data: { username, authSource: 'github' } });
        if (count === 1) return admit(await db.user.findUniqueOrThrow({ where: { id: emailTaken.id } }));
      }
      if (!member) throw refuse();
      try {
        return await db.user.create({
          data: { username, email: emailTaken ? null : who.email, displayName: (who.name ?? who.login).slice(0, 100), role: 'member', authSource: 'github' },
        });
      } catch (err) {
        // A second first sign-in of the same person raced us: theirs is ours.
        if ((err as { code?: string }).code === 'P2002') {
          const row = await db.user.findUnique({ where: { username } });
          if (row) return admit(row);
        }
        throw err;
      }
    },
  };
}

export type GithubAuthService = ReturnType<typeof createGithubAuthService>;
