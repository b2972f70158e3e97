import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { safeEqual, sha256 } from '../crypto.ts';
import type { SettingsService } from './settings.service.ts';

// The one-time setup code (as Jenkins' initial admin password, Grafana and
// Coder do): until onboarding completes, only someone at the console can
// claim the instance. `npm start` prints it; `hangar setup-code` prints it
// again; it is also kept in <data dir>/setup-code with mode 0600. The
// database holds only its hash, and creating the breakglass consumes it in
// the same transaction, so it works once.

const FILE = 'setup-code';
// No 0/O/1/I: people type this from a terminal.
const ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';

/** Case, spaces and dashes do not matter when typing it. */
export function normaliseSetupCode(code: string): string {
  return code.toUpperCase().replace(/[\s-]/g, '');
}

export const hashSetupCode = (code: string) => sha256(`hangar-setup:${normaliseSetupCode(code)}`);

function newCode(): string {
  // 16 characters from 32 (bytes mod 32 is uniform): 80 bits.
  const chars = [...randomBytes(16)].map((b) => ALPHABET[b % ALPHABET.length]).join('');
  return chars.match(/.{4}/g)!.join('-');
}

export function createSetupCodeService({ settings, dataDir }: { settings: SettingsService; dataDir: string }) {
  const file = path.join(dataDir, FILE);

  return {
    file,

    /**
     * The current code, made when there is none (or the file lost it); null
     * when there is nothing left to claim (a breakglass exists or onboarding is done).
     */
    async ensure(opts: { claimable: boolean }): Promise<string | null> {
      if (!opts.claimable) {
        await rm(file, { force: true });
        return null;
      }
      const stored = await settings.setupCodeHash();
      const onDisk = await readFile(file, 'utf8').then((s) => s.trim(), () => null);
      if (stored && onDisk && safeEqual(hashSetupCode(onDisk), stored)) return onDisk;
      const code = newCode();
      await mkdir(dataDir, { recursive: true });
      await writeFile(file, `${code}\n`, { mode: 0o600 });
      await settings.saveSetupCodeHash(hashSetupCode(code));
      return code;
    },

    /** The cheap check the API makes before any expensive work (constant time). */
    async matches(code: string): Promise<boolean> {
      const stored = await settings.setupCodeHash();
      return stored !== null && safeEqual(hashSetupCode(code), stored);
    },

    async discard(): Promise<void> {
      await settings.discardSetupCode();
      await rm(file, { force: true });
    },
  };
}

export type SetupCodeService = ReturnType<typeof createSetupCodeService>;
