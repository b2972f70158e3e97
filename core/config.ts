import { Type, type Static } from 'typebox';
import { Value } from 'typebox/value';
import { parseAllowlist, splitAllowEnv } from './egress-policy.ts';

// Every knob Hangar reads from the environment. README.md documents each one;
// keep the two in step. Parsed once at boot, frozen, and every problem is
// reported at once so an operator fixes a broken deployment in one pass.
const Int = (min: number, max: number, dflt: number) =>
  Type.Integer({ minimum: min, maximum: max, default: dflt });

export const ConfigSchema = Type.Object({
  mode: Type.Union([Type.Literal('development'), Type.Literal('production'), Type.Literal('test')], {
    default: 'development',
  }),
  dataDir: Type.String({ minLength: 1, default: '.data' }),
  databaseUrl: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  temporalAddress: Type.Optional(Type.String({ minLength: 3 })),
  temporalNamespace: Type.String({ minLength: 1, default: 'default' }),
  temporalUiUrl: Type.String({ default: 'http://localhost:8233' }),
  secretKey: Type.Optional(Type.String({ minLength: 32 })),
  host: Type.String({ default: '0.0.0.0' }),
  /**
   * Which proxies' X-Forwarded-* to believe: `false`, a hop count, or a
   * comma-separated list of proxy addresses/CIDRs. Never "all": the leftmost
   * X-Forwarded-For is whatever the client wrote.
   */
  trustProxy: Type.String({ default: 'false', pattern: '^(false|[1-9]|[0-9a-fA-F.:/]+(,\\s*[0-9a-fA-F.:/]+)*)$' }),
  /** Where browsers reach Hangar (OIDC redirect URI); defaults to http://localhost:PORT. */
  publicUrl: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$' })),
  port: Int(0, 65535, 8080),
  /** How agent containers reach the API (config endpoint). */
  agentApiUrl: Type.Optional(Type.String({ pattern: '^https?://' })),
  dockerHostId: Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,30}$', default: 'local' }),
  /**
   * Which task queues a worker process polls: `all` (the control queue and
   * this engine's Docker-host queue, one process per engine), `control` (the
   * control queue only: no Docker socket needed) or `docker` (the Docker-host
   * queue only: the one process that holds the socket).
   */
  workerRole: Type.Union([Type.Literal('all'), Type.Literal('control'), Type.Literal('docker')], { default: 'all' }),
  /** What runs in agent containers: OpenClaw, or the small reference agent (tests, overhead benchmarks). */
  agentRuntime: Type.Union([Type.Literal('openclaw'), Type.Literal('reference')], { default: 'openclaw' }),
  // The next four default per runtime (RUNTIME_DEFAULTS): unset here on purpose.
  agentImage: Type.Optional(Type.String({ minLength: 1 })),
  agentNetwork: Type.String({ minLength: 1, pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$', default: 'hangar-agents' }),
  /** `on`: every Docker-host worker filters what agents reach (iptables); `off` only for engines protected otherwise. */
  egressPolicy: Type.Union([Type.Literal('on'), Type.Literal('off')], { default: 'on' }),
  /** The egress allowlist until an admin saves one (comma-separated `host:<port>` / `<CIDR>[:<port>]`). */
  egressAllow: Type.String({ default: '' }),
  agentMemoryMb: Type.Optional(Type.Integer({ minimum: 64, maximum: 65536 })),
  agentCpus: Type.Number({ minimum: 0.1, maximum: 64, default: 1 }),
  agentPids: Int(32, 65536, 256),
  agentStartTimeoutSec: Type.Optional(Type.Integer({ minimum: 5, maximum: 600 })),
  agentTmpfsMb: Type.Optional(Type.Integer({ minimum: 1, maximum: 4096 })),
  idleTimeoutMin: Int(1, 1440, 30),
  maxConcurrentStarts: Int(1, 1000, 8),
  /** Starts that wait (FIFO, per API process) once maxConcurrentStarts run; past it, 429. */
  startQueueMax: Int(0, 100_000, 1000),
  /** Live event streams one user may hold open per API process (the process holds at most 500). */
  maxStreamsPerUser: Int(1, 500, 5),
  reconcileIntervalSec: Int(10, 3600, 60),
  restartDebounceSec: Int(0, 300, 3),
  sessionTtlHours: Int(1, 24 * 90, 24 * 7),
  /** Chat requests (POST /api/chat) per user per minute, per API process. */
  chatRatePerMin: Int(1, 100_000, 60),
  /** How often each API process writes the chat usage it metered (one statement) and re-reads the month's totals budgets are checked against. */
  usageFlushMs: Int(100, 600_000, 5000),
  /** Per-agent volume cap: a running agent over it is stopped, a start refused. */
  agentStorageMb: Int(1, 10_485_760, 1024),
  /** Consecutive failed health checks (one per reconcile) before the reconciler restarts a running agent. */
  healthFailuresBeforeRestart: Int(1, 1000, 3),
  /** How long one reconcile health check waits for an agent's answer. */
  healthCheckTimeoutMs: Int(100, 60_000, 3000),
  /** How long a start's bootstrap token may wait for its one config fetch. */
  bootstrapTokenTtlSec: Int(10, 3600, 300),
  /**
   * Workflows the control worker keeps in memory between tasks. One per alive
   * lifecycle would grow the worker with the fleet; an evicted one replays its
   * (short) history on its next task instead.
   */
  workerMaxCachedWorkflows: Int(0, 100_000, 250),
  /** Where Docker-host workers keep volume snapshots; defaults to <dataDir>/snapshots. */
  snapshotDir: Type.Optional(Type.String({ minLength: 1 })),
  /** Free space a snapshot must leave on the snapshot disk (it may be Postgres's disk too). */
  snapshotMinFreeMb: Int(0, 10_485_760, 1024),
  /** How often a rollout polls an updated agent's health (the timeout is a fleet setting). */
  updateHealthPollMs: Int(50, 60_000, 5000),
  /** How long a workspace invitation's link stays good. */
  inviteTtlHours: Int(1, 24 * 90, 168),
  /** How often the member-drift schedule has each workspace agent's member list compared with the database. */
  memberSyncIntervalSec: Int(10, 86_400, 300),
  /** What this instance calls itself to federation peers (its identity's `name`); defaults to the host name. */
  instanceName: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\u0000-\\u001f\\u007f]+$' })),
  /** How often the hub refreshes the status of an agent it runs on a peer. */
  federationStatusIntervalSec: Int(5, 86_400, 60),
  /** After `hangar federation rotate-key`: how long peers keep accepting the previous key. */
  federationKeyGraceHours: Int(1, 24 * 30, 24),
  /** Signed command requests one address may send per minute (more get 429, no fleet event). */
  federationRatePerMin: Int(1, 100_000, 600),
  /** SMTP relay for fleet notifications (smtp://user:pass@host:port); unset = mail is logged, not sent. */
  smtpUrl: Type.Optional(Type.String({ pattern: '^smtps?://' })),
  /** How long an admin's password reset link works. */
  passwordResetTtlMin: Int(5, 10_080, 60),
  /** GitHub's OAuth host (authorize and token endpoints): GitHub Enterprise Server, or a fake in tests. */
  githubOauthUrl: Type.String({ pattern: '^https?://[^\\s]+$', default: 'https://github.com' }),
  /** GitHub's REST API base (/user, /user/emails, /user/orgs): `https://<host>/api/v3` on GitHub Enterprise Server. */
  githubApiUrl: Type.String({ pattern: '^https?://[^\\s]+$', default: 'https://api.github.com' }),
  mailFrom: Type.String({ minLength: 3, default: 'Hangar <hangar@localhost>' }),
  logLevel: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' },
  ),
});

type RuntimeDefaulted = 'agentImage' | 'agentMemoryMb' | 'agentStartTimeoutSec' | 'agentTmpfsMb';
type Parsed = Static<typeof ConfigSchema>;
export type HangarConfig = Readonly<Omit<Parsed, RuntimeDefaulted> & Required<Pick<Parsed, RuntimeDefaulted>>>;
export type AgentRuntime = Parsed['agentRuntime'];

/**
 * Per-runtime defaults, from measurements on a 2-core host (README, "Agent
 * runtimes"). OpenClaw idles at ≈ 0.9–1.1 GB and peaks higher during a turn;
 * its first boot on a new volume runs its doctor and takes longest.
 */
export const RUNTIME_DEFAULTS: Record<AgentRuntime, Pick<HangarConfig, RuntimeDefaulted>> = {
  openclaw: { agentImage: 'hangar/openclaw:latest', agentMemoryMb: 2048, agentStartTimeoutSec: 240, agentTmpfsMb: 64 },
  reference: { agentImage: 'hangar/agent:latest', agentMemoryMb: 512, agentStartTimeoutSec: 120, agentTmpfsMb: 16 },
};

/** The environment variable behind each knob (also what docker/compose.yaml may set). */
export const CONFIG_ENV: Record<keyof Static<typeof ConfigSchema>, string> = {
  mode: 'HANGAR_MODE',
  dataDir: 'HANGAR_DATA_DIR',
  databaseUrl: 'DATABASE_URL',
  temporalAddress: 'TEMPORAL_ADDRESS',
  temporalNamespace: 'TEMPORAL_NAMESPACE',
  temporalUiUrl: 'TEMPORAL_UI_URL',
  secretKey: 'HANGAR_SECRET_KEY',
  host: 'HOST',
  trustProxy: 'HANGAR_TRUST_PROXY',
  publicUrl: 'HANGAR_PUBLIC_URL',
  port: 'PORT',
  agentApiUrl: 'HANGAR_AGENT_API_URL',
  dockerHostId: 'HANGAR_DOCKER_HOST_ID',
  workerRole: 'HANGAR_WORKER_ROLE',
  agentRuntime: 'HANGAR_AGENT_RUNTIME',
  agentImage: 'HANGAR_AGENT_IMAGE',
  agentNetwork: 'HANGAR_AGENT_NETWORK',
  egressPolicy: 'HANGAR_EGRESS_POLICY',
  egressAllow: 'HANGAR_EGRESS_ALLOW',
  agentMemoryMb: 'HANGAR_AGENT_MEMORY_MB',
  agentCpus: 'HANGAR_AGENT_CPUS',
  agentPids: 'HANGAR_AGENT_PIDS',
  agentStartTimeoutSec: 'HANGAR_AGENT_START_TIMEOUT_SEC',
  agentTmpfsMb: 'HANGAR_AGENT_TMPFS_MB',
  idleTimeoutMin: 'HANGAR_IDLE_TIMEOUT_MIN',
  maxConcurrentStarts: 'HANGAR_MAX_CONCURRENT_STARTS',
  startQueueMax: 'HANGAR_START_QUEUE_MAX',
  maxStreamsPerUser: 'HANGAR_MAX_STREAMS_PER_USER',
  reconcileIntervalSec: 'HANGAR_RECONCILE_INTERVAL_SEC',
  restartDebounceSec: 'HANGAR_RESTART_DEBOUNCE_SEC',
  sessionTtlHours: 'HANGAR_SESSION_TTL_HOURS',
  chatRatePerMin: 'HANGAR_CHAT_RATE_PER_MIN',
  usageFlushMs: 'HANGAR_USAGE_FLUSH_MS',
  agentStorageMb: 'HANGAR_AGENT_STORAGE_MB',
  healthFailuresBeforeRestart: 'HANGAR_HEALTH_FAILURES_BEFORE_RESTART',
  healthCheckTimeoutMs: 'HANGAR_HEALTH_CHECK_TIMEOUT_MS',
  bootstrapTokenTtlSec: 'HANGAR_BOOTSTRAP_TOKEN_TTL_SEC',
  workerMaxCachedWorkflows: 'HANGAR_WORKER_MAX_CACHED_WORKFLOWS',
  snapshotDir: 'HANGAR_SNAPSHOT_DIR',
  snapshotMinFreeMb: 'HANGAR_SNAPSHOT_MIN_FREE_MB',
  updateHealthPollMs: 'HANGAR_UPDATE_HEALTH_POLL_MS',
  inviteTtlHours: 'HANGAR_INVITE_TTL_HOURS',
  memberSyncIntervalSec: 'HANGAR_MEMBER_SYNC_INTERVAL_SEC',
  instanceName: 'HANGAR_INSTANCE_NAME',
  federationStatusIntervalSec: 'HANGAR_FEDERATION_STATUS_INTERVAL_SEC',
  federationKeyGraceHours: 'HANGAR_FEDERATION_KEY_GRACE_HOURS',
  federationRatePerMin: 'HANGAR_FEDERATION_RATE_PER_MIN',
  smtpUrl: 'SMTP_URL',
  passwordResetTtlMin: 'HANGAR_PASSWORD_RESET_TTL_MIN',
  githubOauthUrl: 'HANGAR_GITHUB_OAUTH_URL',
  githubApiUrl: 'HANGAR_GITHUB_API_URL',
  mailFrom: 'HANGAR_MAIL_FROM',
  logLevel: 'LOG_LEVEL',
};

// Never echo these back in an error: they carry credentials.
const SECRET_KEYS = new Set<string>(['secretKey', 'databaseUrl', 'smtpUrl']);

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

export function parseConfig(env: NodeJS.ProcessEnv = process.env): HangarConfig {
  const raw: Record<string, unknown> = {};
  for (const [key, name] of Object.entries(CONFIG_ENV)) {
    const v = env[name];
    if (v !== undefined && v !== '') raw[key] = v;
  }
  const withDefaults = Value.Default(ConfigSchema, Value.Convert(ConfigSchema, raw));
  // Union errors repeat once per branch: report each variable once.
  const byKey = new Map<string, string>();
  for (const e of Value.Errors(ConfigSchema, withDefaults)) {
    const key = e.instancePath.replace(/^\//, '') as keyof typeof CONFIG_ENV;
    const schema = (ConfigSchema.properties as Record<string, { anyOf?: { const: unknown }[] }>)[key];
    const message = schema?.anyOf ? `must be one of ${schema.anyOf.map((b) => b.const).join(', ')}` : e.message;
    const shown = SECRET_KEYS.has(key) ? '' : ` (got ${JSON.stringify(raw[key])})`;
    if (!byKey.has(key)) byKey.set(key, `${CONFIG_ENV[key] ?? key}: ${message}${shown}`);
  }
  if (raw.trustProxy === 'true') {
    byKey.set('trustProxy', 'HANGAR_TRUST_PROXY: "true" would believe any X-Forwarded-For a client writes; give the number of proxy hops in front of Hangar (e.g. 1) or their addresses (e.g. 10.0.0.5,10.0.1.0/24)');
  }
  const problems = [...byKey.values()];
  const parsed = withDefaults as Parsed;
  const runtimeDefaults = RUNTIME_DEFAULTS[parsed.agentRuntime] ?? RUNTIME_DEFAULTS.openclaw;
  const cfg: HangarConfig = {
    ...parsed,
    agentImage: parsed.agentImage ?? runtimeDefaults.agentImage,
    agentMemoryMb: parsed.agentMemoryMb ?? runtimeDefaults.agentMemoryMb,
    agentStartTimeoutSec: parsed.agentStartTimeoutSec ?? runtimeDefaults.agentStartTimeoutSec,
    agentTmpfsMb: parsed.agentTmpfsMb ?? runtimeDefaults.agentTmpfsMb,
  };
  if (typeof cfg.egressAllow === 'string') {
    for (const p of parseAllowlist(splitAllowEnv(cfg.egressAllow)).problems) problems.push(`HANGAR_EGRESS_ALLOW: ${p}`);
  }
  if (cfg.mode === 'production') {
    if (!cfg.secretKey) problems.push('HANGAR_SECRET_KEY: required in production (no default for secrets)');
    if (!cfg.databaseUrl) problems.push('DATABASE_URL: required in production');
    if (!cfg.temporalAddress) problems.push('TEMPORAL_ADDRESS: required in production');
  }
  if (problems.length) throw new ConfigError(problems);
  return Object.freeze(cfg);
}

/**
 * HANGAR_TRUST_PROXY as Fastify takes it: false, the trusted proxies'
 * addresses, or for a hop count a function trusting that many hops nearest
 * Hangar (what proxy-addr does with a number).
 */
export function trustProxySetting(cfg: Pick<HangarConfig, 'trustProxy'>): false | string | ((address: string, hop: number) => boolean) {
  if (cfg.trustProxy === 'false') return false;
  if (/^[1-9]$/.test(cfg.trustProxy)) {
    const hops = Number(cfg.trustProxy);
    return (_address, hop) => hop < hops;
  }
  return cfg.trustProxy;
}

/** The URL an agent container uses for the API (defaults to the host gateway). */
export function agentApiBase(cfg: HangarConfig, listenPort = cfg.port): string {
  return (cfg.agentApiUrl ?? `http://host.docker.internal:${listenPort}`).replace(/\/$/, '');
}

/** Where browsers reach Hangar (links in mail, the OIDC redirect). */
export function publicBase(cfg: Pick<HangarConfig, 'publicUrl' | 'port'>): string {
  return (cfg.publicUrl ?? `http://localhost:${cfg.port}`).replace(/\/$/, '');
}
