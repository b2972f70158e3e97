import type { HangarConfig } from '../config.ts';
import { randomToken, sha256 } from '../crypto.ts';
import { asSystem, type Db, type User } from '../db.ts';
import { ConflictError, UnauthorizedError, ValidationError } from '../errors.ts';
import type { NotificationService } from './notifications.service.ts';
import { hashPassword } from './passwords.service.ts';
import type { UserService } from './users.service.ts';

// Password reset links an admin has mailed to a user: one-time, expiring
// (HANGAR_PASSWORD_RESET_TTL_MIN), and only the token's sha256 is stored, so
// a database dump holds no working link. The token travels in the URL's
// fragment (#/reset-password/<token>), which browsers never send to a server
// or put in a Referer. A new link replaces the user's earlier ones.

export function createPasswordResetService(deps: { db: Db; config: HangarConfig; users: UserService; notifications: NotificationService }) {
  const { db, config } = deps;
  const baseUrl = () => (config.publicUrl ?? `http://localhost:${config.port}`).replace(/\/$/, '');

  return {
    /** Makes a link and mails it. The answer says where it went and until when it works; never the link. */
    async send(user: User): Promise<{ sentTo: string; expiresAt: Date }> {
      if (user.status === 'deactivated') throw new ConflictError('This user is deactivated', 'user_deactivated');
      if (user.authSource === 'oidc' || user.authSource === 'github') {
        throw new ConflictError('This user signs in through single sign-on; their password is not Hangar\'s', 'sso_account');
      }
      if (!user.email) throw new ConflictError('This user has no email address to send a link to (the breakglass admin: `hangar admin reset-password` at the console)', 'no_email');
      // A link in a log file is a working password reset: no SMTP, no link.
      if (!deps.notifications.canSend()) throw new ConflictError('Mail is not configured (SMTP_URL): a reset link cannot be sent', 'mail_not_configured');
      const token = randomToken(32);
      const expiresAt = new Date(Date.now() + config.passwordResetTtlMin * 60_000);
      await asSystem(db, async (tx) => {
        await tx.passwordReset.updateMany({ where: { userId: user.id, usedAt: null }, data: { usedAt: new Date() } });
        await tx.passwordReset.create({ data: { userId: user.id, tokenHash: sha256(token), expiresAt } });
      });
      const link = `${baseUrl()}/#/reset-password/${token}`;
      await deps.notifications.sendOne(user.email, {
        subject: 'Reset your Hangar password',
        text: [
          `Hello ${user.displayName},`,
          '',
          'An administrator of Hangar sent you this link to choose a new password:',
          '',
          link,
          '',
          `It works once, until ${expiresAt.toUTCString()}. Choosing a new password signs you out everywhere else.`,
          'If you did not expect this mail, ignore it: your password stays as it is.',
        ].join('\n'),
      });
      return { sentTo: user.email, expiresAt };
    },

    /**
     * Spends a link and sets the new password, in one transaction: a wrong,
     * used or expired token (or a second use racing the first) changes nothing.
     */
    async redeem(token: string, password: string): Promise<User> {
      if (password.length < 12) throw new ValidationError('password must be at least 12 characters', { field: 'password' });
      // Hashed before the transaction: bcrypt takes a while and must not hold a row lock.
      const passwordHash = await hashPassword(password);
      return db.$transaction(async (tx) => {
        await tx.$queryRaw`SELECT set_config('app.system', 'on', true)`;
        const now = new Date();
        const reset = await tx.passwordReset.findUnique({ where: { tokenHash: sha256(token) }, include: { user: true } });
        const spent = reset && reset.user.status !== 'deactivated'
          ? await tx.passwordReset.updateMany({ where: { id: reset.id, usedAt: null, expiresAt: { gt: now } }, data: { usedAt: now } })
          : { count: 0 };
        if (!reset || spent.count !== 1) throw new UnauthorizedError('This reset link is wrong, used or expired; ask an admin for a new one', 'invalid_reset_token');
        await deps.users.setPassword(reset.userId, password, { tx, passwordHash });
        return tx.user.findUniqueOrThrow({ where: { id: reset.userId } });
      });
    },
  };
}

export type PasswordResetService = ReturnType<typeof createPasswordResetService>;
