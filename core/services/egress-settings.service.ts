import type { HangarConfig } from '../config.ts';
import { formatAllowEntry, parseAllowlist, splitAllowEnv, type AllowEntry } from '../egress-policy.ts';
import { ValidationError } from '../errors.ts';
import type { SettingsService } from './settings.service.ts';

// The agent egress allowlist: an admin setting (one system setting), with
// HANGAR_EGRESS_ALLOW as the value until an admin saves one. Docker-host
// workers read it when they apply their firewall policy; Hangar's provider
// test reads it before calling a private address.

export const MAX_ALLOW_ENTRIES = 100;

export interface EgressSettings {
  allow: string[];
  /** Where the list comes from: saved by an admin, or the env default. */
  source: 'settings' | 'default';
}

export function createEgressSettingsService({ settings, config }: { settings: SettingsService; config: HangarConfig }) {
  const canonical = (entries: AllowEntry[]) => entries.map(formatAllowEntry);
  const defaults = () => canonical(parseAllowlist(splitAllowEnv(config.egressAllow)).entries);

  async function get(): Promise<EgressSettings> {
    const json = await settings.egressJson();
    if (!json) return { allow: defaults(), source: 'default' };
    const stored = (JSON.parse(json) as { allow?: string[] }).allow ?? [];
    // Stored entries were valid when saved; parsing again only canonicalises.
    return { allow: canonical(parseAllowlist(stored).entries), source: 'settings' };
  }

  return {
    defaults,
    get,

    async entries(): Promise<AllowEntry[]> {
      return parseAllowlist((await get()).allow).entries;
    },

    async put(allow: string[]): Promise<EgressSettings> {
      if (allow.length > MAX_ALLOW_ENTRIES) throw new ValidationError(`at most ${MAX_ALLOW_ENTRIES} allowlist entries`);
      const { entries, problems } = parseAllowlist(allow);
      if (problems.length) throw new ValidationError('invalid egress allowlist', problems, 'invalid_allowlist');
      await settings.saveEgressJson(JSON.stringify({ allow: canonical(entries) }));
      return { allow: canonical(entries), source: 'settings' };
    },
  };
}

export type EgressSettingsService = ReturnType<typeof createEgressSettingsService>;
