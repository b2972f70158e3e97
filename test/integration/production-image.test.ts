import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseConfig } from '../../core/config.ts';
import { createCore } from '../../core/hangar.ts';
import { repoRoot } from '../../core/runtime/paths.runtime.ts';
import { readCompose, serviceEnv } from '../support/compose-env.ts';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import { eventually, removeAgentNetwork, removeAgentsFromDocker } from '../support/hangar.harness.ts';
import { freePort } from '../support/ports.ts';
import { execWithOutput } from '../support/scenario.ts';

// Hangar's own image (docker/hangar/build.sh) in its four roles, against the
// test stack's Postgres and Temporal, with the environment docker/compose.yaml
// gives each service (read from the file, only its ${…} variables supplied
// here) and the secrets as files, as compose mounts them. Then the smoke path
// an operator walks after `docker compose up`: sign in, start an agent, chat.
// The build is cached by its inputs' hash: a rerun with unchanged sources
// reuses the image.

const IMAGE = process.env.HANGAR_IMAGE ?? 'hangar/hangar:latest';

function buildImage(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [path.join(repoRoot, 'docker/hangar/build.sh'), '--tag', IMAGE], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`docker/hangar/build.sh failed (${code}):\n${out.slice(-4000)}`))));
  });
}

async function logsOf(c: Docker.Container): Promise<string> {
  const buf = (await c.logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
  return buf.toString('utf8');
}

describe('the production image', () => {
  const stack = inject('stack');
  const docker = new Docker();
  const id = randomUUID().slice(0, 8);
  const network = `hangar-deploy-${id}`;
  const containers: Docker.Container[] = [];
  const agentIds: string[] = [];
  let fake: Awaited<ReturnType<typeof startFakeOpenAI>>;
  let secrets = '';
  let apiUrl = '';
  let vars: Record<string, string> = {};
  const timings: Record<string, number> = {};

  /** A container of the image in one role: the compose service's env, user, caps and socket mount; the host network. */
  async function run(role: string): Promise<Docker.Container> {
    const compose = readCompose();
    const service = compose.services[role];
    const env = serviceEnv(compose, role, vars);
    const binds = [`${secrets}:/run/secrets:ro`, ...(service.volumes ?? []).filter((v) => v.includes('docker.sock'))];
    const c = await docker.createContainer({
      name: `${network}-${role}`,
      Image: IMAGE,
      Cmd: service.command,
      User: service.user,
      Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      Labels: { 'dev.hangar.test': 'production-image' },
      HostConfig: { NetworkMode: service.network_mode, CapAdd: service.cap_add, Binds: binds },
    });
    containers.push(c);
    await c.start();
    return c;
  }

  async function ready(c: Docker.Container, marker: string, what: string) {
    const deadline = Date.now() + 120_000;
    for (let i = 0; i < 1000; i++) {
      const logs = await logsOf(c);
      if (logs.includes(marker)) return;
      const info = await c.inspect();
      if (!info.State.Running) throw new Error(`${what} exited (${info.State.ExitCode}):\n${logs.slice(-3000)}`);
      if (Date.now() > deadline) throw new Error(`${what} not ready in 120 s:\n${logs.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  beforeAll(async () => {
    let t = Date.now();
    await buildImage();
    timings.build = Date.now() - t;

    fake = await startFakeOpenAI();
    secrets = await mkdtemp(path.join(os.tmpdir(), `${network}-secrets-`));
    // The unprivileged roles (uid 10001) read them, as compose's file secrets.
    await chmod(secrets, 0o755);
    const files = {
      hangar_secret_key: stack.secretKey,
      hangar_database_url: stack.databaseUrl,
      hangar_migration_database_url: stack.adminDatabaseUrl ?? stack.databaseUrl,
    };
    for (const [name, value] of Object.entries(files)) await writeFile(path.join(secrets, name), `${value}\n`, { mode: 0o644 });
    const port = await freePort();
    apiUrl = `http://127.0.0.1:${port}`;
    // Only what compose.yaml leaves to the operator's .env.
    vars = {
      TEMPORAL_ADDRESS: stack.temporalAddress,
      HANGAR_PORT: String(port),
      HANGAR_PUBLIC_URL: apiUrl,
      HANGAR_AGENT_RUNTIME: 'reference',
      HANGAR_AGENT_IMAGE: stack.agentImage,
      HANGAR_AGENT_NETWORK: network,
      HANGAR_EGRESS_ALLOW: `host:${fake.port}`,
      LOG_LEVEL: 'warn',
    };

    t = Date.now();
    const migrate = await run('migrate');
    const exit = (await migrate.wait()) as { StatusCode: number };
    const migrateLogs = await logsOf(migrate);
    expect(exit.StatusCode, migrateLogs).toBe(0);
    expect(migrateLogs).toMatch(/database is up to date|applied:/);
    timings.migrate = Date.now() - t;

    t = Date.now();
    const [worker, dockerWorker] = [await run('worker'), await run('docker-worker')];
    await ready(worker, '[worker] ready', 'worker');
    await ready(dockerWorker, '[worker] ready', 'docker-worker');
    const api = await run('api');
    await eventually(() => fetch(`${apiUrl}/healthz`).then((r) => r.ok), 'api /healthz', 60_000).catch(async (err) => {
      throw new Error(`${(err as Error).message}\n${(await logsOf(api)).slice(-3000)}`);
    });
    timings.start = Date.now() - t;
    // A cold build (dependencies from npm, compile, base image) takes minutes; a cached one seconds.
  }, 900_000);

  afterAll(async () => {
    if (process.env.HANGAR_TEST_VERBOSE) for (const c of containers) console.log(`--- ${(await c.inspect()).Name}\n${await logsOf(c)}`);
    await removeAgentsFromDocker(docker, agentIds);
    for (const c of containers.reverse()) await c.remove({ force: true }).catch(() => undefined);
    await removeAgentNetwork(docker, network);
    await fake?.close();
    if (secrets) await rm(secrets, { recursive: true, force: true });
    console.log(`[production-image] build ${timings.build} ms, migrate ${timings.migrate} ms, roles up ${timings.start} ms, smoke ${timings.smoke} ms`);
  });

  it('splits the roles: each worker polls its own queue, and only the docker-worker has the socket', async () => {
    const [, worker, dockerWorker, api] = containers;
    expect(await logsOf(worker)).toMatch(/polling hangar-control\n/);
    expect(await logsOf(dockerWorker)).toMatch(/polling docker-local\n/);
    for (const c of [worker, api]) {
      const info = await c.inspect();
      expect(info.HostConfig.Binds?.some((b) => b.includes('docker.sock')), info.Name).toBe(false);
      expect(info.Config.User, info.Name).toBe('10001:10001');
    }
    // Two malloc arenas in every role (the image's ENV; see process-defaults.runtime.ts).
    for (const c of [worker, dockerWorker, api]) expect((await c.inspect()).Config.Env).toContain('MALLOC_ARENA_MAX=2');
    expect((await dockerWorker.inspect()).HostConfig.Binds).toContain('/var/run/docker.sock:/var/run/docker.sock');
    // Ready without a socket of its own: Postgres and Temporal answer.
    expect((await fetch(`${apiUrl}/readyz`)).status).toBe(200);
  });

  it('walks the smoke path: sign in, start an agent, chat', async () => {
    const t = Date.now();
    const username = `deploy-${id}`;
    const password = 'correct horse battery staple';
    const core = createCore(parseConfig({ HANGAR_MODE: 'test', DATABASE_URL: stack.databaseUrl, TEMPORAL_ADDRESS: stack.temporalAddress, HANGAR_SECRET_KEY: stack.secretKey }));
    try {
      await core.users.create({ username, password, role: 'member' });
    } finally {
      await core.close();
    }

    const login = await fetch(`${apiUrl}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) });
    expect(login.status, `${await login.clone().text()}\n${(await logsOf(containers[3])).slice(-3000)}`).toBe(200);
    const setCookie = login.headers.getSetCookie();
    // Production marks the session cookie Secure.
    expect(setCookie.join('\n')).toMatch(/Secure/i);
    const cookie = setCookie.map((c) => c.split(';')[0]).join('; ');
    const me = await (await fetch(`${apiUrl}/api/auth/me`, { headers: { cookie } })).json();
    expect(me.user.username).toBe(username);
    const api = (p: string, method: string, body?: unknown) =>
      fetch(`${apiUrl}${p}`, {
        method,
        headers: { cookie, 'x-hangar-csrf': me.csrfToken, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });

    const provider = await api('/api/me/providers', 'POST', { name: 'fake', displayName: 'Fake', type: 'custom', baseUrl: fake.agentBaseUrl, apiKey: 'sk-deploy-0001', models: [{ id: 'fake-model' }] });
    expect(provider.status, await provider.clone().text()).toBe(201);
    const cfg = await api('/api/me/agent-config', 'PUT', { primaryModel: 'fake/fake-model', fallbackModels: [], personality: null, providerId: (await provider.json()).id });
    expect(cfg.status).toBe(200);

    const start = await api('/api/me/agent/start', 'POST');
    expect(start.status, await start.clone().text()).toBe(200);
    const agent = await start.json();
    agentIds.push(agent.id);
    expect(agent.status).toBe('running');
    // Made by the docker-worker, on the network the compose environment names.
    const info = await docker.getContainer(`hangar-agent-${agent.id}`).inspect();
    expect(Object.keys(info.NetworkSettings.Networks)).toEqual([network]);

    const chat = await api('/api/chat', 'POST', { messages: [{ role: 'user', content: 'hello from the production image' }] });
    expect(chat.status, await chat.clone().text()).toBe(200);
    expect((await chat.json()).choices[0].message.content).toBe('echo: hello from the production image');
    expect(fake.seen.some((s) => s.authorization === 'Bearer sk-deploy-0001')).toBe(true);
    timings.smoke = Date.now() - t;
  });

  it("streams a snapshot of the smoke agent's volume with the image's own compiled thread module", async () => {
    // What an image update runs on the docker-worker: the module the build
    // copies beside the compiled activities, and docker-modem from the
    // image's production dependencies, against the engine it was given.
    expect(agentIds).toHaveLength(1);
    const dockerWorker = containers[2];
    const script = `
      import { snapshot, digest } from '/app/dist/activities/workers/volume-snapshot.worker.mjs';
      import { MessageChannel } from 'node:worker_threads';
      import { mkdtempSync } from 'node:fs';
      import { tmpdir } from 'node:os';
      const port = () => { const { port1, port2 } = new MessageChannel(); port1.unref(); return port2; };
      const dir = mkdtempSync(tmpdir() + '/snap-');
      const s = await snapshot({ modem: {}, containerName: 'hangar-agent-${agentIds[0]}', part: dir + '/s.tar', dir, minFreeBytes: 0, progress: port() });
      const d = await digest({ path: dir + '/s.tar', progress: port() });
      console.log(JSON.stringify({ s, d }));`;
    const { code, output: out } = await execWithOutput(dockerWorker, ['node', '--input-type=module', '-e', script]);
    expect(code, out).toBe(0);
    const { s, d } = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { s?: { bytes: number; sha256: string }; d?: { bytes: number; sha256: string } };
    expect(s?.bytes, out).toBeGreaterThan(0);
    expect(d, out).toEqual({ bytes: s!.bytes, sha256: s!.sha256 });
  });
});
