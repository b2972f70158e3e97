import type { Db, User } from '../db.ts';
import { ConflictError, UnauthorizedError, ValidationError } from '../errors.ts';
import type { SettingsService } from './settings.service.ts';

// The breakglass admin: a local admin that works when OIDC is broken. One
// service makes it, for the wizard (through the onboarding workflow) and for
// the CLI alike, and the database holds it to one (a partial unique index),
// however many requests race.

/** How long a parked password hash waits for its workflow step. */
const CREDENTIAL_TTL_MS = 60 * 60_000;

export type BreakglassRequest =
  | { username: string; credentialRef: string; setupCodeHash: string }
  // The CLI: the operator at the console needs no setup code.
  | { username: string; passwordHash: string; setupCodeHash: null };

const isUniqueViolation = (err: unknown) => (err as { code?: string }).code === 'P2002';

export function createBreakglassService({ db, settings }: { db: Db; settings: SettingsService }) {
  const existing = () => db.user.findFirst({ where: { authSource: 'breakglass' } });

  return {
    existing,

    /** Parks a hash for a workflow step, which gets only this reference. */
    async parkCredential(passwordHash: string): Promise<string> {
      // Old parked hashes (abandoned wizards) go as new ones arrive.
      await db.pendingCredential.deleteMany({ where: { expiresAt: { lt: new Date() } } });
      const row = await db.pendingCredential.create({ data: { passwordHash, expiresAt: new Date(Date.now() + CREDENTIAL_TTL_MS) } });
      return row.id;
    },

    /**
     * Creates the breakglass admin and uses up the setup code, in one
     * transaction. A retry of the same request (same credential reference)
     * gets the same user back; any other request once one exists gets 409.
     */
    async create(req: BreakglassRequest): Promise<User> {
      try {
        return await db.$transaction(async (tx) => {
          let passwordHash: string;
          let credentialRef: string | null = null;
          if ('credentialRef' in req) {
            const parked = await tx.pendingCredential.findUnique({ where: { id: req.credentialRef } });
            if (!parked) throw new ValidationError('That credential reference is unknown', undefined, 'invalid_credential_ref');
            if (parked.userId) {
              // Our own earlier success (the step ran again after a crash): same answer.
              const mine = await tx.user.findUnique({ where: { id: parked.userId } });
              if (mine) return mine;
            }
            if (parked.expiresAt < new Date()) throw new ValidationError('The sign-up took too long; try again', undefined, 'credential_expired');
            passwordHash = parked.passwordHash;
            credentialRef = parked.id;
          } else {
            passwordHash = req.passwordHash;
          }
          if (await tx.user.findFirst({ where: { authSource: 'breakglass' } })) {
            throw new ConflictError('A breakglass admin already exists', 'breakglass_exists');
          }
          if (!(await settings.consumeSetupCode(tx, req.setupCodeHash))) {
            throw new UnauthorizedError('That setup code is not valid (run `npx hangar setup-code` at the console)', 'invalid_setup_code');
          }
          const user = await tx.user.create({
            data: { username: req.username.toLowerCase(), displayName: req.username, role: 'admin', authSource: 'breakglass', passwordHash },
          });
          if (credentialRef) await tx.pendingCredential.update({ where: { id: credentialRef }, data: { userId: user.id, usedAt: new Date() } });
          return user;
        });
      } catch (err) {
        // A racing request got there first: its commit deleted the code or took
        // the one breakglass slot. Say so, rather than "wrong code" or a 500.
        if (isUniqueViolation(err) || (err instanceof UnauthorizedError && err.code === 'invalid_setup_code')) {
          if (await existing()) throw new ConflictError('A breakglass admin already exists', 'breakglass_exists');
          if (isUniqueViolation(err)) throw new ConflictError('That username is taken', 'user_exists');
        }
        throw err;
      }
    },
  };
}

export type BreakglassService = ReturnType<typeof createBreakglassService>;
