import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { pipeline } from 'node:stream/promises';
import Docker from 'dockerode';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The reference agent image on its own, against a real Docker engine: built
// with docker/agent/build.sh (a cache hit when nothing changed), run with the
// same hardening Hangar uses, talking to a config server and an
// OpenAI-compatible upstream that run here on the host. No Postgres, no
// Temporal: this file needs only Docker and Node.

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const changelog = JSON.parse(readFileSync(path.join(repoRoot, 'docker/agent/changelog.json'), 'utf8')) as { version: string; changes: string[] };
const IMAGE = process.env.HANGAR_AGENT_IMAGE ?? 'hangar/agent:latest';
const AGENT_PORT = 18789;
const run = randomBytes(4).toString('hex');
const agentId = `itest-${run}`;
/** What the config answer hands the agent (gateway.auth.token): the proxy's bearer. */
const gatewayToken = randomBytes(24).toString('base64url');
/** What the container env holds: good for one config fetch. */
const bootstrapToken = () => `boot-${randomBytes(24).toString('base64url')}`;
const userKey = `sk-itest-user-key-${run}`;
const personality = 'You are a terse test agent.';

const docker = new Docker();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The address host.docker.internal maps to (host-gateway), read from a
 * throwaway container's /etc/hosts: the engine's own answer, honouring any
 * --host-gateway-ip. Asking the host instead is unreliable: engine 20.10
 * leaves Gateway out of the bridge's IPAM config, and Node's
 * os.networkInterfaces() omits docker0 while no container is attached to it
 * (the interface is DOWN). Loopback is unreachable from a container.
 */
async function hostGatewayAddress(): Promise<string> {
  const probe = await docker.createContainer({
    Image: IMAGE,
    Entrypoint: ['node', '-e', 'process.stdout.write(require("fs").readFileSync("/etc/hosts", "utf8"))'],
    Cmd: [],
    HostConfig: { ExtraHosts: ['host.docker.internal:host-gateway'], NetworkMode: 'none', AutoRemove: false },
  });
  try {
    await probe.start();
    await probe.wait();
    const line = (await logsOf(probe)).split('\n').find((l) => /\shost\.docker\.internal$/.test(l.trim()));
    const address = line?.trim().split(/\s+/)[0];
    if (!address) throw new Error('host-gateway did not resolve in a container');
    return address;
  } finally {
    await probe.remove({ force: true, v: true });
  }
}

async function listen(server: http.Server, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  return (server.address() as AddressInfo).port;
}

interface Seen {
  authorization?: string;
  model?: string;
  messages?: Array<{ role: string; content: string }>;
  stream?: boolean;
}

/** An OpenAI-style upstream: echoes the last user message; some model names misbehave on purpose. */
function fakeUpstream(seen: Seen[], aborted: string[]) {
  return http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', async () => {
      const body = JSON.parse(raw || '{}');
      seen.push({ authorization: req.headers.authorization, ...body });
      if (req.url !== '/v1/chat/completions') return res.writeHead(404).end();
      if (body.model === 'broken-model') return res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"message":"overloaded"}}');
      if (body.model === 'reject-model') {
        // Real providers quote (part of) the key back; the agent must not pass it on.
        res.writeHead(401, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ error: { message: `Incorrect API key provided: ${req.headers.authorization?.slice(7)}` } }));
      }
      const last = [...body.messages].reverse().find((m: { role: string }) => m.role === 'user');
      const answer = `echo: ${last?.content ?? ''}`;
      if (body.stream) {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.on('close', () => {
          if (!res.writableFinished) aborted.push(last?.content ?? '');
        });
        for (const [i, word] of answer.split(' ').entries()) {
          if (res.destroyed) return;
          const chunk = { object: 'chat.completion.chunk', model: body.model, choices: [{ index: 0, delta: { content: (i ? ' ' : '') + word } }] };
          res.write(`data: ${JSON.stringify(chunk)}\n\n`);
          await sleep(120); // spaced out, so buffering anywhere would show
        }
        res.write('data: [DONE]\n\n');
        return res.end();
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ object: 'chat.completion', model: body.model, choices: [{ index: 0, message: { role: 'assistant', content: answer }, finish_reason: 'stop' }] }));
    });
  });
}

/**
 * Hangar's internal config endpoint, reduced to its contract: a bootstrap
 * token issued here, once, or 401. `noGatewayToken` tokens get a config
 * without gateway.auth.token.
 */
function fakeConfigServer(upstreamPort: number, closedPort: number, requests: string[], issued: Map<string, { used: boolean; noGatewayToken?: boolean }>) {
  const config = {
    gateway: { agentId, port: AGENT_PORT, ownerKind: 'user', auth: { mode: 'token', token: gatewayToken } },
    agents: { defaults: { model: { primary: 'openai/gpt-4o-mini', fallbacks: ['openai/backup-model'] } } },
    models: {
      providers: {
        openai: { baseUrl: `http://host.docker.internal:${upstreamPort}/v1`, apiKey: userKey, api: 'openai-completions', models: [{ id: 'gpt-4o-mini' }] },
        // Nothing listens there: a provider that is down (connection refused).
        down: { baseUrl: `http://host.docker.internal:${closedPort}/v1`, apiKey: 'sk-down', api: 'openai-completions', models: [] },
      },
    },
  };
  return http.createServer((req, res) => {
    requests.push(req.url ?? '');
    const token = req.headers.authorization?.replace(/^Bearer /, '') ?? '';
    const base = `/api/internal/agent-config/user/${agentId}`;
    if (req.url === `${base}/workspace`) {
      // Asked with the gateway token the config carried. The personality
      // travels as OpenClaw's SOUL.md, with Hangar's marker line first.
      const ok = token === gatewayToken;
      res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
      res.end(JSON.stringify(ok ? { files: { 'SOUL.md': `<!-- managed by Hangar -->\n\n${personality}\n` } } : { error: { code: 'invalid_agent_token', message: "Not this agent's token" } }));
      return;
    }
    // The config: a single-use bootstrap token buys it once.
    const entry = issued.get(token);
    const ok = req.url === base && entry !== undefined && !entry.used;
    if (ok) entry.used = true;
    const answer = ok && entry.noGatewayToken ? { ...config, gateway: { agentId, port: AGENT_PORT } } : config;
    res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
    res.end(JSON.stringify(ok ? answer : { error: { code: 'invalid_agent_token', message: "Not this agent's token" } }));
  });
}

/** Sizes of the files under a container's /data/sessions, read through the archive API. */
async function sessionFileSizes(c: Docker.Container): Promise<Record<string, number>> {
  const stream = (await c.getArchive({ path: '/data/sessions' })) as NodeJS.ReadableStream;
  const extract = tar.extract();
  const sizes: Record<string, number> = {};
  extract.on('entry', (h, s, next) => {
    if (h.type === 'file') sizes[h.name] = h.size ?? 0;
    s.on('end', next);
    s.resume();
  });
  await pipeline(stream, extract);
  return sizes;
}

async function logsOf(c: Docker.Container): Promise<string> {
  const buf = (await c.logs({ stdout: true, stderr: true })) as unknown as Buffer;
  return buf.toString('utf8').replace(/[\u0000-\u0008]/g, '');
}

describe('reference agent image', () => {
  const seen: Seen[] = [];
  const configRequests: string[] = [];
  const issued = new Map<string, { used: boolean; noGatewayToken?: boolean }>();
  /** A bootstrap token the fake config server will honour once. */
  const issue = (opts: { noGatewayToken?: boolean } = {}) => {
    const t = bootstrapToken();
    issued.set(t, { used: false, ...opts });
    return t;
  };
  const abortedStreams: string[] = [];
  const upstream = fakeUpstream(seen, abortedStreams);
  let configServer: http.Server;
  let configBase = '';
  let network = '';
  const volume = `hangar-itest-agent-${run}`;
  const containers: Docker.Container[] = [];
  let agent: Docker.Container;
  let agentUrl = '';
  let listenHost = '';

  /** The same hardening Hangar's docker activities apply. */
  async function startAgent(name: string, token: string, opts: { volume?: string; env?: string[] } = {}): Promise<Docker.Container> {
    const c = await docker.createContainer({
      name,
      Image: IMAGE,
      User: '10001:10001',
      Env: [`HANGAR_CONFIG_URL=${configBase}/api/internal/agent-config/user/${agentId}`, `HANGAR_GATEWAY_TOKEN=${token}`, ...(opts.env ?? [])],
      ExposedPorts: { [`${AGENT_PORT}/tcp`]: {} },
      HostConfig: {
        PortBindings: { [`${AGENT_PORT}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: '' }] },
        Mounts: [{ Type: 'volume', Source: opts.volume ?? volume, Target: '/data' }],
        NetworkMode: network,
        ExtraHosts: ['host.docker.internal:host-gateway'],
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        ReadonlyRootfs: true,
        Tmpfs: { '/tmp': 'rw,noexec,nosuid,size=16m' },
        Memory: 256 * 1024 * 1024,
        PidsLimit: 64,
      },
    });
    containers.push(c);
    await c.start();
    return c;
  }

  const call = (p: string, init: RequestInit & { headers?: Record<string, string> } = {}) =>
    fetch(`${agentUrl}${p}`, {
      ...init,
      headers: {
        authorization: `Bearer ${gatewayToken}`,
        'x-hangar-user-id': 'user-1',
        'x-hangar-user-name': encodeURIComponent('Ada Lovelace'),
        ...(init.body ? { 'content-type': 'application/json' } : {}),
        ...init.headers,
      },
    });

  beforeAll(async () => {
    const t0 = Date.now();
    const { stdout } = await promisify(execFile)('bash', [path.join(repoRoot, 'docker/agent/build.sh'), '--tag', IMAGE], {
      cwd: repoRoot,
      maxBuffer: 16 * 1024 * 1024,
    });
    console.log(`[agent-image] ${IMAGE} ${stdout.trim()} ready in ${((Date.now() - t0) / 1000).toFixed(1)}s`);

    listenHost = await hostGatewayAddress();
    const upstreamPort = await listen(upstream, listenHost);
    // A port that was free a moment ago. Not port 1: fetch refuses "bad ports"
    // before connecting, which would not exercise a refused connection.
    const probe = http.createServer();
    const closedPort = await listen(probe, listenHost);
    await new Promise((r) => probe.close(r));
    configServer = fakeConfigServer(upstreamPort, closedPort, configRequests, issued);
    configBase = `http://host.docker.internal:${await listen(configServer, listenHost)}`;
    console.log(`[agent-image] host servers listen on ${listenHost}`);

    // Like Hangar's agent network: a bridge with inter-container traffic off.
    network = `hangar-itest-${run}`;
    await docker.createNetwork({ Name: network, Driver: 'bridge', Options: { 'com.docker.network.bridge.enable_icc': 'false' } });
    await docker.createVolume({ Name: volume });

    agent = await startAgent(`hangar-itest-agent-${run}`, issue());
    agentUrl = await healthyUrl(agent);
  }, 600_000);

  /** The agent's published address once /health answers (bounded). */
  async function healthyUrl(c: Docker.Container): Promise<string> {
    const info = await c.inspect();
    const url = `http://127.0.0.1:${info.NetworkSettings.Ports[`${AGENT_PORT}/tcp`]![0].HostPort}`;
    const deadline = Date.now() + 30_000;
    const healthy = () => fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false);
    for (let i = 0; !(await healthy()); i++) {
      if (Date.now() > deadline || i > 1000) throw new Error(`agent never became healthy:\n${await logsOf(c)}`);
      await sleep(100);
    }
    return url;
  }

  afterAll(async () => {
    for (const c of containers) await c.remove({ force: true }).catch(() => undefined);
    await docker.getVolume(volume).remove().catch(() => undefined);
    await docker.getVolume(`${volume}-capped`).remove().catch(() => undefined);
    if (network) await docker.getNetwork(network).remove().catch(() => undefined);
    await new Promise((r) => upstream.close(r));
    await new Promise((r) => configServer?.close(r));
  }, 60_000);

  it('is labelled, non-root, and was configured through the config endpoint', async () => {
    const image = await docker.getImage(IMAGE).inspect();
    expect(image.Config.Labels).toMatchObject({ 'dev.hangar.agent': 'true', 'org.opencontainers.image.version': changelog.version });
    expect(image.Config.Labels['dev.hangar.changelog']).toBeTruthy();
    expect(image.Config.User).toBe('10001:10001');
    expect(Object.keys(image.Config.ExposedPorts ?? {})).toEqual(['18789/tcp']);
    expect(Object.keys(image.Config.Volumes ?? {})).toEqual(['/data']);
    expect(configRequests).toContain(`/api/internal/agent-config/user/${agentId}`);
  });

  it('answers /health without a token, everything else only with it', async () => {
    const health = await fetch(`${agentUrl}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok', version: changelog.version });
    expect((await fetch(`${agentUrl}/v1/info`)).status).toBe(401);
    expect((await call('/v1/info', { headers: { authorization: 'Bearer not-the-token' } })).status).toBe(401);
    const info = await call('/v1/info');
    expect(info.status).toBe(200);
    expect(await info.json()).toMatchObject({ version: changelog.version, changelog: { changes: changelog.changes } });
  });

  it('forwards a chat to the provider with the user key, primary model and personality', async () => {
    const res = await call('/v1/chat/completions', {
      method: 'POST',
      headers: { 'x-hangar-session-id': 'itest-session' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'hello agent' }] }),
    });
    expect(res.status).toBe(200);
    expect((await res.json()).choices[0].message.content).toBe('echo: hello agent');
    const sent = seen.find((s) => s.messages?.some((m) => m.content === 'hello agent'));
    expect(sent?.authorization).toBe(`Bearer ${userKey}`);
    expect(sent?.model).toBe('gpt-4o-mini');
    expect(sent?.messages?.[0]).toEqual({ role: 'system', content: personality });
  });

  it('streams the provider\'s SSE chunks as they arrive', async () => {
    const res = await call('/v1/chat/completions', {
      method: 'POST',
      headers: { 'x-hangar-session-id': 'itest-session' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'please stream these five words' }], stream: true }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    expect(res.headers.get('cache-control')).toBe('no-cache');
    const arrivals: number[] = [];
    let text = '';
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      arrivals.push(performance.now());
      text += decoder.decode(chunk, { stream: true });
    }
    const events = text.split('\n\n').filter((e) => e.startsWith('data: '));
    expect(events.at(-1)).toBe('data: [DONE]');
    const words = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)).choices[0].delta.content).join('');
    expect(words).toBe('echo: please stream these five words');
    // Six words 120 ms apart: buffered, they would arrive in one burst at the end.
    expect(arrivals.length).toBeGreaterThanOrEqual(4);
    expect(arrivals.at(-1)! - arrivals[0]).toBeGreaterThan(300);
  });

  it('stops reading from the provider when the client goes away mid-stream', async () => {
    const controller = new AbortController();
    const res = await call('/v1/chat/completions', {
      method: 'POST',
      headers: { 'x-hangar-session-id': 'itest-abandoned' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'a long answer I will not wait for' }], stream: true }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    controller.abort();
    const deadline = Date.now() + 5000;
    while (!abortedStreams.includes('a long answer I will not wait for') && Date.now() < deadline) await sleep(50);
    expect(abortedStreams).toContain('a long answer I will not wait for');
  });

  it('falls back in order when a model answers 5xx or its provider is down', async () => {
    for (const model of ['openai/broken-model', 'down/some-model']) {
      const before = seen.length;
      const res = await call('/v1/chat/completions', {
        method: 'POST',
        body: JSON.stringify({ model, messages: [{ role: 'user', content: `fallback from ${model}` }] }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-hangar-model')).toBe('openai/backup-model');
      expect((await res.json()).choices[0].message.content).toBe(`echo: fallback from ${model}`);
      expect(seen.slice(before).map((s) => s.model)).toEqual(model.startsWith('openai/') ? ['broken-model', 'backup-model'] : ['backup-model']);
    }
    // The down provider really refused a connection (fetch did not reject the URL up front).
    expect(await logsOf(agent)).toContain('ECONNREFUSED');
  });

  it('reports a provider error as 502 without echoing the key', async () => {
    const res = await call('/v1/chat/completions', {
      method: 'POST',
      body: JSON.stringify({ model: 'openai/reject-model', messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(res.status).toBe(502);
    const text = await res.text();
    expect(JSON.parse(text).error).toMatchObject({ code: 'upstream_error', upstreamStatus: 401 });
    expect(text).not.toContain(userKey);
    expect(await logsOf(agent)).not.toContain(userKey);
    expect(await logsOf(agent)).not.toContain(gatewayToken);
  });

  it('rejects bad chat input with a 4xx and a JSON error', async () => {
    for (const body of ['not json', '{}', '{"messages":[]}', '{"messages":[{"role":"user","content":"x"}],"stream":"yes"}']) {
      const res = await call('/v1/chat/completions', { method: 'POST', body });
      expect(res.status).toBe(400);
      expect((await res.json()).error.code).toBe('invalid_input');
    }
  });

  it('keeps the exchanges in the volume and lists them per session', async () => {
    const res = await call('/v1/sessions');
    expect(res.status).toBe(200);
    const { sessions } = (await res.json()) as { sessions: Array<{ id: string; messages: Array<Record<string, unknown>> }> };
    const session = sessions.find((s) => s.id === 'itest-session');
    expect(session?.messages).toEqual([
      expect.objectContaining({ role: 'user', content: 'hello agent', by: { id: 'user-1', name: 'Ada Lovelace' } }),
      expect.objectContaining({ role: 'assistant', content: 'echo: hello agent', model: 'openai/gpt-4o-mini' }),
      expect.objectContaining({ role: 'user', content: 'please stream these five words' }),
      expect.objectContaining({ role: 'assistant', content: 'echo: please stream these five words' }),
    ]);
    // An exchange the client abandoned is not history.
    expect(sessions.find((s) => s.id === 'itest-abandoned')).toBeUndefined();
    // Requests without a session header land in "default".
    expect(JSON.stringify(sessions.find((s) => s.id === 'default'))).toContain('fallback from down/some-model');
  });

  it('serves with the gateway token from its config, never with the bootstrap token in its env', async () => {
    const env = (await agent.inspect()).Config.Env ?? [];
    const fromEnv = env.find((e) => e.startsWith('HANGAR_GATEWAY_TOKEN='))!.slice('HANGAR_GATEWAY_TOKEN='.length);
    expect(fromEnv).not.toBe(gatewayToken);
    expect((await call('/v1/info', { headers: { authorization: `Bearer ${fromEnv}` } })).status).toBe(401);
    expect((await call('/v1/info')).status).toBe(200);
    expect(await logsOf(agent)).not.toContain(fromEnv);
  });

  it('refuses to run with a token Hangar does not accept, or a config without a gateway token', async () => {
    const spent = [...issued.entries()].find(([, v]) => v.used)![0];
    for (const [name, token, expected] of [
      ['bad', 'wrong-token', 'HTTP 401'],
      ['replayed', spent, 'HTTP 401'],
      ['no-gw', issue({ noGatewayToken: true }), 'gateway.auth.token'],
    ] as const) {
      const bad = await startAgent(`hangar-itest-agent-${name}-${run}`, token);
      const result = await Promise.race([bad.wait(), sleep(30_000).then(() => null)]);
      expect(result, `the ${name} agent should exit on its own`).not.toBeNull();
      expect(result!.StatusCode).not.toBe(0);
      expect(await logsOf(bad)).toContain(expected);
    }
  });

  it('keeps its history under the caps when flooded with 4 MB turns', async () => {
    const caps = { entry: 4096, session: 16 * 1024, total: 40 * 1024 };
    const capped = await startAgent(`hangar-itest-agent-capped-${run}`, issue(), {
      volume: `${volume}-capped`,
      env: [`HISTORY_MAX_ENTRY_BYTES=${caps.entry}`, `HISTORY_MAX_SESSION_BYTES=${caps.session}`, `HISTORY_MAX_TOTAL_BYTES=${caps.total}`],
    });
    const url = await healthyUrl(capped);
    const big = 'w'.repeat(190_000);
    const messages = Array.from({ length: 23 }, (_, i) => ({ role: 'user', content: `${i} ${big}` }));
    expect(JSON.stringify({ messages }).length).toBeGreaterThan(4 * 1024 * 1024);
    for (let i = 0; i < 24; i++) {
      const res = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${gatewayToken}`, 'content-type': 'application/json', 'x-hangar-session-id': `flood-${i % 4}` },
        body: JSON.stringify({ messages: [...messages, { role: 'user', content: `turn ${i}` }] }),
      });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    // What is really on the volume, file by file.
    const sizes = await sessionFileSizes(capped);
    const total = Object.values(sizes).reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThan(0);
    expect(total).toBeLessThanOrEqual(caps.total);
    for (const size of Object.values(sizes)) expect(size).toBeLessThanOrEqual(caps.session);
    // The newest turn is kept, its long messages cut with a marker.
    const res = await fetch(`${url}/v1/sessions`, { headers: { authorization: `Bearer ${gatewayToken}` } });
    const { sessions } = (await res.json()) as { sessions: Array<{ id: string; messages: Array<{ role: string; content: string }> }> };
    const newest = sessions.find((x) => x.id === 'flood-3')!;
    const lastTurn = newest.messages.filter((m) => m.role === 'user').at(-1)!;
    expect(lastTurn.content).toBe('turn 23');
    expect(newest.messages.some((m) => /…\[truncated \d+ bytes\]$/.test(m.content))).toBe(true);
  });

  it('stops quickly and cleanly on SIGTERM', async () => {
    const t0 = Date.now();
    await agent.stop({ t: 10 });
    const elapsed = Date.now() - t0;
    const state = (await agent.inspect()).State;
    expect(state.ExitCode).toBe(0);
    expect(elapsed).toBeLessThan(3000);
  });
});
