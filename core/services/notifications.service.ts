import nodemailer, { type Transporter } from 'nodemailer';
import type { HangarConfig } from '../config.ts';
import { asSystem, type Db } from '../db.ts';

// Fleet mail through any SMTP relay (nodemailer). At most one mail per user
// per rollout: the ledger row is taken before sending, so a retried activity
// sends again only if the previous attempt died before it could mark it sent.

export interface Mail {
  subject: string;
  text: string;
}

export interface NotifyResult {
  sent: number;
  skipped: number;
}

export function createNotificationService({ db, config, log = console.warn }: { db: Db; config: HangarConfig; log?: (m: string) => void }) {
  let transport: Transporter | null = null;
  const mailer = () => (transport ??= nodemailer.createTransport(config.smtpUrl!));

  async function sendTo(rolloutId: string, kind: string, users: { id: string; email: string | null }[], mail: Mail): Promise<NotifyResult> {
    let sent = 0;
    let skipped = 0;
    for (const u of users) {
      if (!u.email) {
        skipped++;
        continue;
      }
      const ledger = await db.rolloutNotification.upsert({
        where: { rolloutId_userId: { rolloutId, userId: u.id } },
        create: { rolloutId, userId: u.id, kind },
        update: {},
      });
      if (ledger.sentAt || ledger.kind !== kind) {
        skipped++;
        continue;
      }
      if (config.smtpUrl) {
        await mailer().sendMail({ from: config.mailFrom, to: u.email, subject: mail.subject, text: mail.text });
      } else {
        log(`mail (SMTP_URL unset, not sent) to ${u.email}: ${mail.subject}`);
      }
      await db.rolloutNotification.update({ where: { rolloutId_userId: { rolloutId, userId: u.id } }, data: { sentAt: new Date() } });
      sent++;
    }
    return { sent, skipped };
  }

  return {
    /** The people an agent answers to: its user, or a workspace's owners and admins. */
    async ownersOf(ownerKind: string, ownerId: string): Promise<{ id: string; email: string | null }[]> {
      if (ownerKind === 'user') {
        const u = await db.user.findUnique({ where: { id: ownerId }, select: { id: true, email: true, status: true } });
        return u && u.status === 'active' ? [u] : [];
      }
      if (ownerKind === 'workspace') {
        const ms = await asSystem(db, (tx) => tx.workspaceMember.findMany({
          where: { workspaceId: ownerId, role: { in: ['owner', 'admin'] }, user: { status: 'active' } },
          select: { user: { select: { id: true, email: true } } },
        }));
        return ms.map((m) => m.user);
      }
      return [];
    },

    admins(): Promise<{ id: string; email: string | null }[]> {
      return db.user.findMany({ where: { role: 'admin', status: 'active' }, select: { id: true, email: true } });
    },

    sendTo,

    /** One mail outside the rollout ledger (an invitation); logged, not sent, without SMTP_URL. */
    async send(to: string, mail: Mail): Promise<'sent' | 'logged'> {
      if (!config.smtpUrl) {
        log(`mail (SMTP_URL unset, not sent) to ${to}: ${mail.subject}`);
        return 'logged';
      }
      await mailer().sendMail({ from: config.mailFrom, to, subject: mail.subject, text: mail.text });
      return 'sent';
    },

    /** Whether mail really leaves (SMTP_URL set); mail that carries a secret link is refused otherwise. */
    canSend(): boolean {
      return Boolean(config.smtpUrl);
    },

    /** One mail outside any rollout (no ledger): a password reset link. Callers check canSend() first. */
    async sendOne(to: string, mail: Mail): Promise<void> {
      if (!config.smtpUrl) throw new Error('SMTP_URL is not set');
      await this.send(to, mail);
    },

    async close(): Promise<void> {
      transport?.close();
    },
  };
}

export type NotificationService = ReturnType<typeof createNotificationService>;
