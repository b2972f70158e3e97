import cookie from '@fastify/cookie';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyServerOptions } from 'fastify';
import { trustProxySetting } from '../core/config.ts';
import type { Core } from '../core/hangar.ts';
import { createLoginThrottle, type LoginThrottle } from '../core/services/login-throttle.service.ts';
import type { AgentControl } from '../core/control/agent-control.ts';
import type { RolloutControl } from '../core/control/rollout-control.ts';
import { createAuth, type Auth } from './auth.ts';
import { clientErrorHandler, errorBody, installErrorHandler } from './error-handler.ts';
import { installInputGuard } from './input-guard.ts';
import { installSecurityHeaders } from './security-headers.ts';
import { createLiveConnections, type LiveConnections } from './live-connections.ts';
import { createMetrics } from './metrics.ts';
import { installOnboardingGate } from './onboarding-gate.ts';
import { onboardingRoutes } from './routes/onboarding.routes.ts';
import { oidcRoutes } from './routes/oidc.routes.ts';
import type { OidcService } from '../core/services/oidc.service.ts';
import { createGithubOAuth, type GithubOAuthClient } from './github-oauth.ts';
import { adminAuditRoutes } from './routes/admin-audit.routes.ts';
import { adminSignInRoutes } from './routes/admin-sign-in.routes.ts';
import { adminSystemAgentRoutes } from './routes/admin-system-agents.routes.ts';
import { githubRoutes } from './routes/github.routes.ts';
import { passwordRoutes } from './routes/password.routes.ts';
import { adminAgentRoutes } from './routes/admin-agents.routes.ts';
import { adminFederationRoutes } from './routes/admin-federation.routes.ts';
import { federationRoutes } from './routes/federation.routes.ts';
import { adminUserRoutes } from './routes/admin-users.routes.ts';
import { adminWorkspaceRoutes } from './routes/admin-workspaces.routes.ts';
import { agentEventRoutes } from './routes/agent-events.routes.ts';
import { egressRoutes } from './routes/egress.routes.ts';
import { fleetRoutes } from './routes/fleet.routes.ts';
import { webRoutes } from './routes/web.routes.ts';
import { updateRoutes } from './routes/updates.routes.ts';
import { agentRoutes } from './routes/agent.routes.ts';
import { authRoutes } from './routes/auth.routes.ts';
import { chatRoutes } from './routes/chat.routes.ts';
import { usageRoutes } from './routes/usage.routes.ts';
import { healthRoutes } from './routes/health.routes.ts';
import { internalRoutes } from './routes/internal.routes.ts';
import { providerRoutes } from './routes/providers.routes.ts';
import { workspaceAgentRoutes } from './routes/workspace-agent.routes.ts';
import { workspaceRoutes } from './routes/workspaces.routes.ts';

export interface RouteDeps {
  core: Core;
  auth: Auth;
  control: AgentControl;
  rolloutControl: RolloutControl;
  secureCookies: boolean;
  loginThrottle: LoginThrottle;
  oidc: OidcService;
  /** GitHub sign-in's OAuth 2 client (@fastify/oauth2), rebuilt when its settings change. */
  github: GithubOAuthClient;
  /** docker null: this API has no engine of its own to ask (a split deployment's API has no socket). */
  readiness: { docker: (() => Promise<unknown>) | null };
  /** Open event streams and in-flight chats, per user (caps; ended on deactivation). */
  live: LiveConnections;
}

export interface AppOptions {
  core: Core;
  readiness?: Partial<RouteDeps['readiness']>;
  logger?: FastifyServerOptions['logger'];
}

// Bodies are validated strictly (no coercion, unknown fields rejected); query
// strings and params are text on the wire, so those are coerced.
function validators() {
  const base = { allErrors: false, strict: false, removeAdditional: false as const, useDefaults: true };
  const body = addFormats.default(new Ajv.default({ ...base, coerceTypes: false }));
  const text = addFormats.default(new Ajv.default({ ...base, coerceTypes: true }));
  return ({ schema, httpPart }: { schema: object; httpPart?: string }) =>
    (httpPart === 'body' ? body : text).compile(schema);
}

/** Builds the whole API; `server.ts` only starts it. */
export async function buildApp(opts: AppOptions): Promise<FastifyInstance> {
  const { core } = opts;
  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: 1024 * 1024,
    // Only behind a proxy you run: otherwise X-Forwarded-For would let a client
    // pick its own address and dodge the per-address sign-in throttle.
    trustProxy: trustProxySetting(core.config),
    // Malformed requests fastify refuses before routing answer in our error shape too.
    clientErrorHandler,
    frameworkErrors: (err, _request, reply) => void (reply as FastifyReply).code(400).send(errorBody('bad_url', err.message)),
  });
  app.setValidatorCompiler(validators());
  installErrorHandler(app);
  installInputGuard(app);
  app.decorateRequest('user', null);
  app.decorateRequest('authVia', null);
  app.decorateRequest('csrfToken', null);
  app.decorateRequest('tokenScopes', null);

  await app.register(cookie, { secret: core.keyring.derive('cookie-signing') });
  // Security headers (helmet's, computed once), on every answer.
  installSecurityHeaders(app);
  await app.register(swagger, {
    openapi: {
      info: { title: 'Hangar', version: '0.1.0', description: 'Per-user agent containers driven by Temporal workflows' },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer' },
          session: { type: 'apiKey', in: 'cookie', name: 'hangar_session' },
        },
      },
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  // Off by default: a route opts in with `config.rateLimit` (the chat proxy does).
  await app.register(rateLimit, { global: false });

  const auth = createAuth(core.users);
  const metrics = createMetrics(core, { storageCapBytes: core.config.agentStorageMb * 1024 * 1024 });
  metrics.install(app, auth);
  core.temporal.observe((operation, outcome) => metrics.workflowCalls.inc({ operation, outcome }));
  // The model comes from the agent's answer: past MODEL_LABELS distinct names
  // the rest count as "other", so an agent cannot grow /metrics without bound.
  const MODEL_LABELS = 100;
  const modelLabels = new Set<string>();
  core.usage.observe((r) => {
    if (modelLabels.size < MODEL_LABELS) modelLabels.add(r.model);
    const model = modelLabels.has(r.model) ? r.model : 'other';
    metrics.usageAnswers.inc();
    metrics.usageTokens.inc({ direction: 'in', model }, r.tokensIn);
    metrics.usageTokens.inc({ direction: 'out', model }, r.tokensOut);
  });
  core.usage.observeRefusals((scope) => metrics.budgetRefusals.inc({ scope }));
  core.usage.onFlushError((err) => app.log.warn({ err: err.message }, 'usage flush failed; the batch is kept for the next one'));
  // The usage flusher: budgets and the month's totals are read before the first request is served.
  app.addHook('onReady', () => core.usage.start());
  app.addHook('onClose', () => core.usage.stop());
  installOnboardingGate(app, core.onboarding);
  const deps: RouteDeps = {
    core,
    auth,
    control: core.agentControl,
    rolloutControl: core.rolloutControl,
    secureCookies: core.config.mode === 'production',
    loginThrottle: createLoginThrottle(),
    oidc: core.oidc,
    github: createGithubOAuth({ settings: core.settings, config: core.config, secureCookies: core.config.mode === 'production' }),
    live: createLiveConnections({ maxStreams: 500, maxStreamsPerUser: core.config.maxStreamsPerUser }),
    readiness: { docker: opts.readiness?.docker === null ? null : (opts.readiness?.docker ?? (async () => undefined)) },
  };
  // The chat path's lookups come from memory from here on, kept right by the
  // database's change notifications; a user deactivated by any process has
  // what this one holds open for them ended too.
  core.listenForChanges((err) => app.log.warn({ err: err.message }, 'change notifications lost; lookups go to the database until they are back'));
  const unsubscribe = core.cache.onUserDeactivated((userId) => deps.live.closeUser(userId));
  app.addHook('onClose', async () => unsubscribe());
  for (const routes of [healthRoutes, authRoutes, providerRoutes, agentRoutes, chatRoutes, usageRoutes, internalRoutes, adminUserRoutes, adminAgentRoutes, fleetRoutes, egressRoutes, federationRoutes, adminFederationRoutes, updateRoutes, workspaceRoutes, workspaceAgentRoutes, adminWorkspaceRoutes, agentEventRoutes, onboardingRoutes, oidcRoutes, githubRoutes, passwordRoutes, adminSignInRoutes, adminAuditRoutes, adminSystemAgentRoutes, webRoutes]) {
    await app.register(routes, deps);
  }
  app.addHook('onClose', () => deps.github.close());
  return app;
}
