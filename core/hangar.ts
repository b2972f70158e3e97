import path from 'node:path';
import type { HangarConfig } from './config.ts';
import { createAgentControl } from './control/agent-control.ts';
import { createEgressControl } from './control/egress-control.ts';
import { createMemberControl } from './control/member-control.ts';
import { createFederationControl } from './control/federation-control.ts';
import { createOnboardingControl } from './control/onboarding-control.ts';
import { createRolloutControl } from './control/rollout-control.ts';
import { createTemporalPort, type TemporalPort } from './control/temporal.port.ts';
import { createKeyring, type Keyring } from './crypto.ts';
import { createDb, type Db } from './db.ts';
import { listenForDbChanges, type DbChanges } from './runtime/db-changes.runtime.ts';
import { resolveSecretKey } from './runtime/secret-key.runtime.ts';
import { createAgentConfigService } from './services/agent-config.service.ts';
import { createAuditService } from './services/audit.service.ts';
import { createBreakglassService } from './services/breakglass.service.ts';
import { createAgentService } from './services/agents.service.ts';
import { createEgressSettingsService } from './services/egress-settings.service.ts';
import { createFederationClient } from './services/federation-client.service.ts';
import { createFederationIdentityService } from './services/federation-identity.service.ts';
import { createFederationService } from './services/federation.service.ts';
import { createFleetSettingsService } from './services/fleet-settings.service.ts';
import { createGithubAuthService } from './services/github-auth.service.ts';
import { createSystemAgentService } from './services/system-agents.service.ts';
import { createPasswordResetService } from './services/password-reset.service.ts';
import { createSignInSettingsService } from './services/sign-in-settings.service.ts';
import { createNotificationService } from './services/notifications.service.ts';
import { createOidcService } from './services/oidc.service.ts';
import { createRolloutService } from './services/rollouts.service.ts';
import { createProviderService } from './services/providers.service.ts';
import { createLookupCache } from './services/lookup-cache.service.ts';
import { closePasswordPool } from './services/passwords.service.ts';
import { createSettingsService } from './services/settings.service.ts';
import { createSetupCodeService } from './services/setup-code.service.ts';
import { createUsageService } from './services/usage.service.ts';
import { createUserService } from './services/users.service.ts';
import { createInviteService } from './services/invites.service.ts';
import { createWorkspaceAgentService } from './services/workspace-agents.service.ts';
import { createWorkspaceService } from './services/workspaces.service.ts';

/**
 * Everything the API, the activities and the CLI share, built once per
 * process: the domain services and the one port to Temporal. Temporal is
 * connected on first use, so a process that never starts a workflow (the CLI,
 * chat while Temporal is down) never needs it.
 */
export function createCore(config: HangarConfig, opts: { databaseUrl?: string; temporalAddress?: string; apiPort?: () => number } = {}) {
  const databaseUrl = opts.databaseUrl ?? config.databaseUrl;
  if (!databaseUrl) throw new Error('DATABASE_URL is not set (npm start sets it for the embedded Postgres)');
  const db: Db = createDb(databaseUrl);
  const keyring: Keyring = createKeyring(resolveSecretKey(config));
  const settings = createSettingsService({ db, keyring });
  const fleet = createFleetSettingsService({ db, config, settings });
  const notifications = createNotificationService({ db, config });
  const rollouts = createRolloutService({ db, fleet });
  const temporal: TemporalPort = createTemporalPort({ config, address: opts.temporalAddress ?? config.temporalAddress ?? '127.0.0.1:7233' });
  // Off (every lookup from the database) until listenForChanges: only the API turns it on.
  const cache = createLookupCache();
  let changes: DbChanges | null = null;
  const users = createUserService({ db, sessionTtlHours: config.sessionTtlHours, cache });
  const setupCodes = createSetupCodeService({ settings, dataDir: path.resolve(config.dataDir) });
  const breakglass = createBreakglassService({ db, settings });
  const egress = createEgressSettingsService({ settings, config });
  const agents = createAgentService({ db, keyring, config, settings, apiPort: opts.apiPort, cache });
  const audit = createAuditService({ db });
  const providers = createProviderService({ db, keyring, egress });
  const agentConfigs = createAgentConfigService({ db, keyring });
  const workspaces = createWorkspaceService({ db, fleet, audit });
  const federationIdentity = createFederationIdentityService({ settings, config });
  const federationClient = createFederationClient();
  const federation = createFederationService({ db, client: federationClient, identity: federationIdentity, graceHours: config.federationKeyGraceHours, recordEvent: (e) => rollouts.recordEvent(e) });
  const usage = createUsageService({ db, flushMs: config.usageFlushMs });
  return {
    config,
    db,
    keyring,
    settings,
    temporal,
    users,
    setupCodes,
    breakglass,
    agents,
    providers,
    agentConfigs,
    systemAgents: createSystemAgentService({ db, agents, agentConfigs, providers }),
    audit,
    workspaces,
    invites: createInviteService({ db, config, workspaces, notifications, audit }),
    workspaceAgents: createWorkspaceAgentService({ db, keyring, workspaces, agents, agentConfigs, audit }),
    memberControl: createMemberControl({ temporal }),
    federationIdentity,
    federation,
    oidc: createOidcService({ db, settings }),
    githubAuth: createGithubAuthService({ db, config }),
    signInSettings: createSignInSettingsService({ settings, keyring, config }),
    passwordResets: createPasswordResetService({ db, config, users, notifications }),
    fleet,
    egress,
    rollouts,
    notifications,
    agentControl: createAgentControl({ temporal, config }),
    egressControl: createEgressControl({ temporal, agents }),
    rolloutControl: createRolloutControl({ temporal, config, fleet, rollouts }),
    federationControl: createFederationControl({ temporal, config, federation, identity: federationIdentity, client: federationClient, agents, agentConfigs, rollouts }),
    onboarding: createOnboardingControl({ temporal, settings, setupCodes, breakglass, users, keyring }),
    cache,
    /** Chat usage and budgets; its flusher runs only where `usage.start()` is called (the API). */
    usage,
    /**
     * Turns on the in-memory lookups of the chat path, kept right by the
     * database's change notifications (the API process; idempotent).
     */
    listenForChanges(onError?: (err: Error) => void): void {
      if (changes) return;
      changes = listenForDbChanges(databaseUrl, { onChange: cache.apply, onReset: cache.reset, onError });
      cache.attach(changes);
    },
    async close() {
      await changes?.close();
      await usage.stop();
      await temporal.close();
      await closePasswordPool();
      await notifications.close();
      await db.$disconnect();
    },
  };
}

export type Core = ReturnType<typeof createCore>;
