import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import Docker from 'dockerode';
import { buildApp } from '../../api/app.ts';
import { parseConfig } from '../../core/config.ts';
import { createCore, type Core } from '../../core/hangar.ts';
import { createEgressFirewall } from '../../core/runtime/egress-firewall.runtime.ts';
import { repoRoot } from '../../core/runtime/stack.runtime.ts';
import type { StackInfo } from './global-setup.ts';
import { freePort } from './ports.ts';

export interface WorkerProcess {
  child: ChildProcess;
  /** SIGKILL: no cleanup, exactly like a crash. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

export async function spawnWorker(env: NodeJS.ProcessEnv, timeoutMs = 90_000, nodeArgs: string[] = []): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', 'worker/main.ts'], {
    cwd: repoRoot,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker not ready in ${timeoutMs}ms:\n${output}`)), timeoutMs);
    const onData = (d: Buffer) => {
      output += d.toString();
      if (process.env.HANGAR_TEST_VERBOSE) process.stderr.write(d);
      if (output.includes('[worker] ready')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited with ${code}:\n${output}`));
    });
  });
  return {
    child,
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** For an API that shares another Hangar's worker. */
function noWorker(): WorkerProcess {
  return { child: null as unknown as ChildProcess, kill: async () => undefined, stop: async () => undefined };
}

export interface Hangar {
  url: string;
  core: Core;
  temporal: Client;
  docker: Docker;
  env: NodeJS.ProcessEnv;
  worker: WorkerProcess;
  restartWorker(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Removes a test Hangar's agent network (any container still on it first:
 * only that Hangar's agents are) and the egress chains its worker installed.
 */
export async function removeAgentNetwork(docker: Docker, name: string): Promise<void> {
  const found = (await docker.listNetworks({ filters: { name: [name] } })).filter((n) => n.Name === name);
  for (const n of found) {
    const info = await docker.getNetwork(n.Id).inspect().catch(() => null);
    for (const id of Object.keys(info?.Containers ?? {})) await docker.getContainer(id).remove({ force: true, v: false }).catch(() => undefined);
    await docker.getNetwork(n.Id).remove().catch(() => undefined);
  }
  await createEgressFirewall().remove(name).catch(() => undefined);
}

/**
 * The API in this process (port on all interfaces so agents reach it) and the
 * worker as a child process. Every Hangar gets an agent network of its own
 * (unless the test names one), so scenes never share a bridge, an egress
 * policy or an API port rule; the network goes at stop.
 */
export async function startHangarOn(
  stack: StackInfo,
  overrides: Record<string, string> = {},
  /** workerNodeArgs: extra node flags for the worker process (the bench's --cpu-prof). */
  opts: { worker?: boolean; workerNodeArgs?: string[] } = {},
): Promise<Hangar> {
  const apiPort = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HANGAR_MODE: 'test',
    DATABASE_URL: stack.databaseUrl,
    TEMPORAL_ADDRESS: stack.temporalAddress,
    HANGAR_SECRET_KEY: stack.secretKey,
    HANGAR_DATA_DIR: stack.dataDir,
    // The reference agent is the fast test double; openclaw.test.ts overrides both.
    HANGAR_AGENT_RUNTIME: 'reference',
    HANGAR_AGENT_IMAGE: stack.agentImage,
    HANGAR_WORKFLOW_BUNDLE: stack.workflowBundlePath,
    HANGAR_RESTART_DEBOUNCE_SEC: '1',
    HANGAR_AGENT_START_TIMEOUT_SEC: '60',
    PORT: String(apiPort),
    HANGAR_PUBLIC_URL: `http://127.0.0.1:${apiPort}`,
    LOG_LEVEL: 'warn',
    HANGAR_AGENT_NETWORK: `hangar-t-${randomUUID().slice(0, 8)}`,
    ...overrides,
  };
  const ownsNetwork = opts.worker !== false && !overrides.HANGAR_AGENT_NETWORK;
  const config = parseConfig(env);
  const core = createCore(config, { temporalAddress: env.TEMPORAL_ADDRESS });
  const connection = Connection.lazy({ address: env.TEMPORAL_ADDRESS! });
  const temporal = new Client({ connection, namespace: config.temporalNamespace });
  const app = await buildApp({ core });
  await app.listen({ host: '0.0.0.0', port: apiPort });
  const h: Hangar = {
    url: `http://127.0.0.1:${apiPort}`,
    core,
    temporal,
    docker: new Docker(),
    env,
    worker: opts.worker === false ? noWorker() : await spawnWorker(env, undefined, opts.workerNodeArgs),
    async restartWorker() {
      await h.worker.stop();
      h.worker = await spawnWorker(env, undefined, opts.workerNodeArgs);
    },
    async stop() {
      await h.worker.stop();
      // Before the Temporal connection closes, so closing stays the last thing (as it was before networks per Hangar).
      if (ownsNetwork) await removeAgentNetwork(h.docker, config.agentNetwork);
      await app.close();
      await connection.close().catch(() => undefined);
      await h.core.close();
    },
  };
  return h;
}

export interface TestUser {
  id: string;
  token: string;
  /** fetch against the API as this user (bearer token). */
  api(path: string, init?: { method?: string; body?: unknown; headers?: Record<string, string> }): Promise<Response>;
}

export async function createTestUser(h: Hangar, role: 'admin' | 'member' = 'member'): Promise<TestUser> {
  const username = `u-${randomUUID().slice(0, 12)}`;
  const user = await h.core.users.create({ username, password: 'correct horse battery', role });
  const { token } = await h.core.users.createToken(user.id, 'test');
  return {
    id: user.id,
    token,
    api: (path, init = {}) =>
      fetch(`${h.url}${path}`, {
        method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
        headers: {
          authorization: `Bearer ${token}`,
          ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...init.headers,
        },
        body: init.body === undefined ? undefined : typeof init.body === 'string' ? init.body : JSON.stringify(init.body),
      }),
  };
}

/** Poll until `fn` returns a truthy value; bounded in time and count. */
export async function eventually<T>(fn: () => Promise<T | null | undefined | false>, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    const v = await fn().catch(() => null);
    if (v) return v;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Removes every container and volume of the given agents (test cleanup). */
export async function removeAgentsFromDocker(docker: Docker, agentIds: string[]): Promise<void> {
  for (const id of agentIds) {
    await docker.getContainer(`hangar-agent-${id}`).remove({ force: true }).catch(() => undefined);
    await docker.getVolume(`hangar-agent-${id}-data`).remove().catch(() => undefined);
  }
}

/**
 * The API as its own process (api/server.ts), so a test can SIGKILL it.
 * compiled: run `dist/api/server.js` as production does (build it first:
 * buildDist in production.runtime.ts) instead of the sources through tsx.
 */
export async function spawnApi(env: NodeJS.ProcessEnv, port: number, timeoutMs = 60_000, nodeArgs: string[] = [], compiled = false) {
  const child = spawn(process.execPath, [...nodeArgs, ...(compiled ? ['dist/api/server.js'] : ['--import', 'tsx', 'api/server.ts'])], {
    cwd: repoRoot,
    env: { ...env, PORT: String(port), HOST: '0.0.0.0', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 1000; i++) {
    if (child.exitCode !== null) throw new Error(`api exited: ${stderr}`);
    if (await fetch(`${url}/healthz`).then((r) => r.ok, () => false)) break;
    if (Date.now() > deadline) throw new Error(`api not up in ${timeoutMs}ms: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    pid: child.pid!,
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
    /** A clean exit (SIGTERM), so `--cpu-prof` and the like write their files. */
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
