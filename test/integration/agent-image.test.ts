import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Docker from 'dockerode';
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
const gatewayToken = randomBytes(24).toString('base64url');
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

/** Hangar's internal config endpoint, reduced to its contract: this agent's token or 401. */
function fakeConfigServer(upstreamPort: number, closedPort: number, requests: string[]) {
  const config = {
    gateway: { agentId, port: AGENT_PORT, ownerKind: 'user' },
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
    const base = `/api/internal/agent-config/user/${agentId}`;
    const ok = (req.url === base || req.url === `${base}/workspace`) && req.headers.authorization === `Bearer ${gatewayToken}`;
    // The personality travels as OpenClaw's SOUL.md, with Hangar's marker line first.
    const workspace = { files: { 'SOUL.md': `<!-- managed by Hangar -->\n\n${personality}\n` } };
    res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
    res.end(JSON.stringify(ok ? (req.url === base ? config : workspace) : { error: { code: 'invalid_agent_token', message: "Not this agent's token" } }));
  });
}

async function logsOf(c: Docker.Container): Promise<string> {
  const buf = (await c.logs({ stdout: true, stderr: true })) as unknown as Buffer;
  return buf.toString('utf8').replace(/[\u0000-\u0008]/g, '');
}

describe('reference agent image', () => {
  const seen: Seen[] = [];
  const configRequests: string[] = [];
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
  async function startAgent(name: string, token: string): Promise<Docker.Container> {
    const c = await docker.createContainer({
      name,
      Image: IMAGE,
      User: '10001:10001',
      Env: [`HANGAR_CONFIG_URL=${configBase}/api/internal/agent-config/user/${agentId}`, `HANGAR_GATEWAY_TOKEN=${token}`],
      ExposedPorts: { [`${AGENT_PORT}/tcp`]: {} },
      HostConfig: {
        PortBindings: { [`${AGENT_PORT}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: '' }] },
        Mounts: [{ Type: 'volume', Source: volume, Target: '/data' }],
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
    configServer = fakeConfigServer(upstreamPort, closedPort, configRequests);
    configBase = `http://host.docker.internal:${await listen(configServer, listenHost)}`;
    console.log(`[agent-image] host servers listen on ${listenHost}`);

    // Like Hangar's agent network: a bridge with inter-container traffic off.
    network = `hangar-itest-${run}`;
    await docker.createNetwork({ Name: network, Driver: 'bridge', Options: { 'com.docker.network.bridge.enable_icc': 'false' } });
    await docker.createVolume({ Name: volume });

    agent = await startAgent(`hangar-itest-agent-${run}`, gatewayToken);
    const info = await agent.inspect();
    agentUrl = `http://127.0.0.1:${info.NetworkSettings.Ports[`${AGENT_PORT}/tcp`]![0].HostPort}`;
    const deadline = Date.now() + 30_000;
    const healthy = () => fetch(`${agentUrl}/health`, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false);
    while (!(await healthy())) {
      if (Date.now() > deadline) throw new Error(`agent never became healthy:\n${await logsOf(agent)}`);
      await sleep(100);
    }
  }, 600_000);

  afterAll(async () => {
    for (const c of containers) await c.remove({ force: true }).catch(() => undefined);
    await docker.getVolume(volume).remove().catch(() => undefined);
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

  it('refuses to run with a token Hangar does not accept', async () => {
    const bad = await startAgent(`hangar-itest-agent-bad-${run}`, 'wrong-token');
    const result = await Promise.race([bad.wait(), sleep(30_000).then(() => null)]);
    expect(result, 'the agent should exit on its own').not.toBeNull();
    expect(result!.StatusCode).not.toBe(0);
    expect(await logsOf(bad)).toContain('HTTP 401');
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
