import type { HangarConfig } from './config.ts';
import { createKeyring, type Keyring } from './crypto.ts';
import { createDb, type Db } from './db.ts';
import { resolveSecretKey } from './runtime/secret-key.runtime.ts';
import { createAgentConfigService } from './services/agent-config.service.ts';
import { createAuditService } from './services/audit.service.ts';
import { createAgentService } from './services/agents.service.ts';
import { createEgressSettingsService } from './services/egress-settings.service.ts';
import { createFleetSettingsService } from './services/fleet-settings.service.ts';
import { createNotificationService } from './services/notifications.service.ts';
import { createRolloutService } from './services/rollouts.service.ts';
import { createProviderService } from './services/providers.service.ts';
import { createUserService } from './services/users.service.ts';

/** Everything the API and the activities share, built once per process. */
export function createCore(config: HangarConfig, opts: { databaseUrl?: string; apiPort?: () => number } = {}) {
  const databaseUrl = opts.databaseUrl ?? config.databaseUrl;
  if (!databaseUrl) throw new Error('DATABASE_URL is not set (npm start sets it for the embedded Postgres)');
  const db: Db = createDb(databaseUrl);
  const keyring: Keyring = createKeyring(resolveSecretKey(config));
  const fleet = createFleetSettingsService({ db, config });
  const notifications = createNotificationService({ db, config });
  const egress = createEgressSettingsService({ db, config });
  return {
    config,
    db,
    keyring,
    users: createUserService({ db, sessionTtlHours: config.sessionTtlHours }),
    agents: createAgentService({ db, keyring, config, apiPort: opts.apiPort }),
    providers: createProviderService({ db, keyring, egress }),
    agentConfigs: createAgentConfigService({ db, keyring }),
    audit: createAuditService({ db }),
    fleet,
    egress,
    rollouts: createRolloutService({ db, fleet }),
    notifications,
    async close() {
      await notifications.close();
      await db.$disconnect();
    },
  };
}

export type Core = ReturnType<typeof createCore>;
