import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { egressChains } from '../../core/egress-policy.ts';
import { repoRoot } from '../../core/runtime/stack.runtime.ts';
import { createEgressFirewall } from '../../core/runtime/egress-firewall.runtime.ts';
import { createTestUser, removeAgentNetwork, useScene, type TestUser } from '../support/hangar.harness.ts';
import { chat, giveProvider } from '../support/scenario.ts';

// The agent egress policy on a real engine: real agent containers try to
// reach listeners this test makes on this machine (addresses it adds to lo
// for its duration, the bridge gateway, another agent) and only Hangar's API
// and allowlisted ports answer. Nothing here talks to anything but this
// machine. The scene has its own bridge network, so other test runs on the
// same engine keep theirs.

const exec = promisify(execFile);
const run = randomBytes(4).toString('hex');
const network = `hangar-agents-egress-${run}`;
const firewall = createEgressFirewall();

/** An address of a range the policy refuses, added to lo for this file only (a free one: parallel runs pick others). */
async function addAddress(prefix: string): Promise<string> {
  for (let i = 0; i < 20; i++) {
    const address = `${prefix}.${2 + Math.floor(Math.random() * 250)}`;
    const added = await exec('ip', ['addr', 'add', `${address}/32`, 'dev', 'lo']).then(() => true, () => false);
    if (added) return address;
  }
  throw new Error(`no free address in ${prefix}.0/24`);
}

/** A server that answers every request with a marker, so a leak of its body is easy to spot. */
async function marked(host: string, marker: string, seen: string[] = []) {
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.writeHead(200, { 'content-type': 'application/json' });
    // Shaped like a chat completion: if anything passed it on, the marker would show.
    res.end(JSON.stringify({ object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: marker } }], data: [{ id: marker }], marker }));
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  return { server, port: (server.address() as AddressInfo).port, seen };
}

/**
 * A network namespace behind a veth pair, holding a private and a
 * link-local address with a server on each: unlike addresses on lo (which
 * the host delivers to itself, INPUT), traffic to these is forwarded, so it
 * meets the DOCKER-USER side of the policy.
 */
async function forwardedTarget(tag: string) {
  const ns = `hangar-egress-${tag}`;
  const [hostIf, nsIf] = [`veg${tag.slice(0, 6)}a`, `veg${tag.slice(0, 6)}b`];
  const third = 100 + Math.floor(Math.random() * 150);
  const privateAddr = `10.213.${third}.2`;
  const linkLocalAddr = `169.254.${third}.2`;
  const ip = (...args: string[]) => exec('ip', args);
  await ip('netns', 'add', ns);
  await ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf);
  await ip('link', 'set', nsIf, 'netns', ns);
  await ip('addr', 'add', `10.213.${third}.1/30`, 'dev', hostIf);
  await ip('link', 'set', hostIf, 'up');
  await ip('route', 'add', `${linkLocalAddr}/32`, 'dev', hostIf);
  for (const args of [['addr', 'add', `${privateAddr}/30`, 'dev', nsIf], ['addr', 'add', `${linkLocalAddr}/32`, 'dev', nsIf], ['link', 'set', nsIf, 'up'], ['link', 'set', 'lo', 'up'], ['route', 'add', 'default', 'via', `10.213.${third}.1`]]) {
    await ip('netns', 'exec', ns, 'ip', ...args);
  }
  const script = `const http = require('http'); let n = 0;
    for (const a of process.argv.slice(1)) http.createServer((q, s) => s.end('FORWARDED-BODY-' + a)).listen(8080, a, () => ++n === 2 && console.log('listening'));`;
  const child: ChildProcess = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script, privateAddr, linkLocalAddr], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('namespace server did not start')), 10_000);
    child.stdout!.on('data', (d) => String(d).includes('listening') && (clearTimeout(timer), resolve()));
    child.once('exit', (code) => (clearTimeout(timer), reject(new Error(`namespace server exited ${code}`))));
  });
  return {
    privateAddr,
    linkLocalAddr,
    port: 8080,
    async remove() {
      child.kill('SIGKILL');
      await ip('link', 'del', hostIf).catch(() => undefined);
      await ip('netns', 'del', ns).catch(() => undefined);
    },
  };
}

const close = (s?: http.Server) => new Promise<void>((r) => (s ? s.close(() => r()) : r()));

describe('agent egress policy', () => {
  const scene = useScene({ overrides: { HANGAR_AGENT_NETWORK: network } });
  const addresses: string[] = [];
  const servers: http.Server[] = [];
  let linkLocal: { address: string; port: number; seen: string[] };
  let privateNet: { address: string; port: number; seen: string[] };
  let hostOnly: { port: number; seen: string[] };
  let secret: { port: number; seen: string[] };
  let redirector: { port: number; seen: string[] };
  let forwarded: Awaited<ReturnType<typeof forwardedTarget>> | null = null;
  let admin: TestUser;
  let alice: TestUser;
  let agentA = '';
  let bridge = '';
  let gateway = '';
  const marker = (name: string) => `${name.toUpperCase()}-BODY-${run}`;

  beforeAll(async () => {
    // The agent code these tests exercise: a cache hit when nothing changed.
    const image = inject('stack').agentImage;
    await exec('bash', [path.join(repoRoot, 'docker/agent/build.sh'), '--tag', image], { cwd: repoRoot, maxBuffer: 16 * 1024 * 1024 });

    const ll = await addAddress('169.254.77');
    addresses.push(ll);
    const pn = await addAddress('10.213.77');
    addresses.push(pn);
    const llServer = await marked(ll, marker('linklocal'));
    const pnServer = await marked(pn, marker('private'));
    const hostServer = await marked('0.0.0.0', marker('hostport'));
    const secretServer = await marked('0.0.0.0', marker('secret'));
    linkLocal = { address: ll, port: llServer.port, seen: llServer.seen };
    privateNet = { address: pn, port: pnServer.port, seen: pnServer.seen };
    hostOnly = hostServer;
    secret = secretServer;
    // A "provider" that redirects: to an allowlisted host port that would answer, or to the link-local listener.
    const redirectSeen: string[] = [];
    const redirect = http.createServer((req, res) => {
      redirectSeen.push(`${req.method} ${req.url}`);
      const to = req.url?.startsWith('/to-secret')
        ? `http://host.docker.internal:${secret.port}/v1/chat/completions`
        : `http://${linkLocal.address}:${linkLocal.port}/latest/meta-data/`;
      res.writeHead(302, { location: to, 'content-type': 'text/plain' }).end('see elsewhere');
    });
    await new Promise<void>((r) => redirect.listen(0, '0.0.0.0', r));
    redirector = { port: (redirect.address() as AddressInfo).port, seen: redirectSeen };
    servers.push(llServer.server, pnServer.server, hostServer.server, secretServer.server, redirect);

    [admin, alice] = await Promise.all([createTestUser(scene.h, 'admin'), createTestUser(scene.h)]);
    await giveProvider(alice, scene.fake);
    const started = await alice.api('/api/me/agent/start', { method: 'POST' });
    expect(started.status, await started.clone().text()).toBe(200);
    agentA = (await started.json()).id;
    scene.agentIds.push(agentA);

    const net = await scene.h.docker.getNetwork(network).inspect();
    bridge = net.Options?.['com.docker.network.bridge.name'] ?? `br-${net.Id.slice(0, 12)}`;
    gateway = net.IPAM?.Config?.[0]?.Gateway ?? '';
  });

  afterAll(async () => {
    for (const s of servers) await close(s);
    for (const a of addresses) await exec('ip', ['addr', 'del', `${a}/32`, 'dev', 'lo']).catch(() => undefined);
    await forwarded?.remove();
    // The agents, the network and this bridge's chains (the scene then stops Hangar).
    await removeAgentNetwork(scene.h.docker, network);
    // The run's later files share this database: their Hangars go back to their own HANGAR_EGRESS_ALLOW.
    await scene.h.core.settings.clearEgress();
  });

  /** A fetch from inside an agent container, bounded by its own short timeout. */
  async function fromAgent(agentId: string, url: string): Promise<{ ok: boolean; status?: number; body?: string; error?: string }> {
    const script = [
      'fetch(process.argv[1], { signal: AbortSignal.timeout(2500), redirect: "manual" })',
      '.then(async (r) => console.log(JSON.stringify({ ok: true, status: r.status, body: (await r.text()).slice(0, 300) })),',
      '(e) => console.log(JSON.stringify({ ok: false, error: String(e.cause?.code ?? e.name) })))',
    ].join('');
    const { stdout } = await exec('docker', ['exec', `hangar-agent-${agentId}`, 'node', '-e', script, url], { timeout: 15_000 });
    return JSON.parse(stdout.trim().split('\n').at(-1)!);
  }

  async function setAllow(allow: string[]) {
    const res = await admin.api('/api/admin/egress', { method: 'PUT', body: { allow } });
    const body = await res.json();
    expect(res.status, JSON.stringify(body)).toBe(200);
    return body;
  }

  it('installs its chains on the scene\'s bridge, jumped to once from INPUT and DOCKER-USER, and a worker restart changes nothing', async () => {
    const { input, forward } = egressChains(bridge);
    const jumps = async () => {
      const { stdout } = await exec('iptables', ['-S']);
      return stdout.split('\n').filter((l) => l.includes(`-i ${bridge} `) && (l.endsWith(`-j ${input}`) || l.endsWith(`-j ${forward}`)));
    };
    const before = await firewall.show(bridge);
    expect(before.some((r) => r.includes('--dport 53'))).toBe(true);
    // iptables -S spells the tcp match out (-m tcp).
    expect(before).toContainEqual(expect.stringMatching(new RegExp(`^-A ${input} -p tcp (-m tcp )?--dport ${new URL(scene.h.url).port} -j ACCEPT$`)));
    expect(await jumps()).toEqual([
      expect.stringMatching(new RegExp(`^-A INPUT -i ${bridge} .*-j ${input}$`)),
      expect.stringMatching(new RegExp(`^-A DOCKER-USER -i ${bridge} .*-j ${forward}$`)),
    ]);
    await scene.h.restartWorker();
    expect(await firewall.show(bridge)).toEqual(before);
    expect(await jumps()).toHaveLength(2);
  });

  it('lets an agent fetch its config and reach the allowlisted upstream: a chat through Hangar works', async () => {
    const reply = await chat(alice, 'hello through the policy');
    expect(reply.status, JSON.stringify(reply.body)).toBe(200);
    expect(reply.text).toBe('echo: hello through the policy');
    const api = await fromAgent(agentA, `http://host.docker.internal:${new URL(scene.h.url).port}/healthz`);
    expect(api).toMatchObject({ ok: true, status: 200 });
  });

  it('refuses link-local and private addresses, until an admin allowlists one', async () => {
    // The listeners are up (from the host, which the policy does not filter).
    expect(await fetch(`http://${linkLocal.address}:${linkLocal.port}/`).then((r) => r.text())).toContain(marker('linklocal'));
    for (const t of [linkLocal, privateNet]) {
      const got = await fromAgent(agentA, `http://${t.address}:${t.port}/latest/meta-data/`);
      expect(got.ok, JSON.stringify(got)).toBe(false);
    }
    expect(linkLocal.seen).toHaveLength(1);
    expect(privateNet.seen).toHaveLength(0);

    // Allowlisted (as a CIDR with a port) the same listener answers the agent: the refusal above was the policy's.
    const saved = await setAllow([`host:${scene.fake.port}`, `${privateNet.address}/32:${privateNet.port}`]);
    expect(saved.allow).toContain(`${privateNet.address}/32:${privateNet.port}`);
    expect(saved.hosts).toEqual([expect.objectContaining({ hostId: 'local', status: 'applied', networks: expect.arrayContaining([{ network, bridge }]) })]);
    const opened = await fromAgent(agentA, `http://${privateNet.address}:${privateNet.port}/`);
    expect(opened).toMatchObject({ ok: true, status: 200 });
    expect(opened.body).toContain(marker('private'));
    // Another port of that address, and the link-local one, stay closed.
    expect((await fromAgent(agentA, `http://${linkLocal.address}:${linkLocal.port}/`)).ok).toBe(false);

    await setAllow([`host:${scene.fake.port}`]);
    expect((await fromAgent(agentA, `http://${privateNet.address}:${privateNet.port}/`)).ok).toBe(false);
  });

  it('refuses forwarded traffic to private and link-local networks (a namespace this test makes), until allowlisted', async () => {
    forwarded = await forwardedTarget(run);
    const { privateAddr, linkLocalAddr, port } = forwarded;
    // Reachable from the host, so the refusals below are the policy's.
    expect(await fetch(`http://${privateAddr}:${port}/`).then((r) => r.text())).toBe(`FORWARDED-BODY-${privateAddr}`);
    for (const address of [privateAddr, linkLocalAddr]) {
      const got = await fromAgent(agentA, `http://${address}:${port}/`);
      expect(got.ok, `${address}: ${JSON.stringify(got)}`).toBe(false);
    }
    await setAllow([`host:${scene.fake.port}`, `${linkLocalAddr}/32:${port}`]);
    const opened = await fromAgent(agentA, `http://${linkLocalAddr}:${port}/`);
    expect(opened).toMatchObject({ ok: true, status: 200, body: `FORWARDED-BODY-${linkLocalAddr}` });
    expect((await fromAgent(agentA, `http://${privateAddr}:${port}/`)).ok).toBe(false);
    await setAllow([`host:${scene.fake.port}`]);
    expect((await fromAgent(agentA, `http://${linkLocalAddr}:${port}/`)).ok).toBe(false);
  });

  it('refuses every host port but Hangar\'s, by host.docker.internal and by the bridge gateway', async () => {
    expect(gateway).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    for (const host of ['host.docker.internal', gateway]) {
      const got = await fromAgent(agentA, `http://${host}:${hostOnly.port}/`);
      expect(got.ok, `${host}: ${JSON.stringify(got)}`).toBe(false);
    }
    expect(hostOnly.seen).toHaveLength(0);
    const api = await fromAgent(agentA, `http://${gateway}:${new URL(scene.h.url).port}/healthz`);
    expect(api).toMatchObject({ ok: true, status: 200 });
  });

  it('keeps agents apart: another agent\'s address is unreachable; Docker\'s embedded DNS still answers', async () => {
    const bob = await createTestUser(scene.h);
    await giveProvider(bob, scene.fake);
    const started = await bob.api('/api/me/agent/start', { method: 'POST' });
    expect(started.status).toBe(200);
    const agentB = (await started.json()).id as string;
    scene.agentIds.push(agentB);
    const info = await scene.h.docker.getContainer(`hangar-agent-${agentB}`).inspect();
    const ipB = info.NetworkSettings.Networks[network]!.IPAddress;
    expect(ipB).toBeTruthy();
    const got = await fromAgent(agentA, `http://${ipB}:18789/health`);
    expect(got.ok, JSON.stringify(got)).toBe(false);
    // B is up and answering (through its published port on the host).
    const hostPort = info.NetworkSettings.Ports['18789/tcp']![0]!.HostPort;
    expect((await fetch(`http://127.0.0.1:${hostPort}/health`)).status).toBe(200);

    // The embedded DNS server (127.0.0.11 in the container) resolves a container name on the network.
    const { stdout } = await exec('docker', ['exec', `hangar-agent-${agentA}`, 'node', '-e',
      'require("dns").promises.lookup(process.argv[1]).then((a) => console.log(a.address), (e) => console.log("ERR " + e.code))', `hangar-agent-${agentB}`,
    ], { timeout: 15_000 });
    expect(stdout.trim()).toBe(ipB);
  });

  it('a provider that redirects gets a clean 502: the redirect is not followed and nothing of its target comes back', async () => {
    await setAllow([`host:${scene.fake.port}`, `host:${redirector.port}`, `host:${secret.port}`]);
    const carol = await createTestUser(scene.h);
    for (const [name, where] of [['tosecret', 'to-secret'], ['tometa', 'to-meta']] as const) {
      const res = await carol.api('/api/me/providers', {
        body: { name, displayName: name, type: 'custom', baseUrl: `http://host.docker.internal:${redirector.port}/${where}/v1`, apiKey: 'sk-carol-1234', models: [{ id: 'm' }] },
      });
      expect(res.status).toBe(201);
    }
    const cfg = await carol.api('/api/me/agent-config', { method: 'PUT', body: { primaryModel: 'tosecret/m', fallbackModels: [], personality: null, providerId: null } });
    expect(cfg.status).toBe(200);
    const started = await carol.api('/api/me/agent/start', { method: 'POST' });
    expect(started.status).toBe(200);
    scene.agentIds.push((await started.json()).id);

    for (const model of ['tosecret/m', 'tometa/m']) {
      for (const stream of [false, true]) {
        const res = await carol.api('/api/chat', { body: { model, stream, messages: [{ role: 'user', content: 'follow me' }] } });
        const text = await res.text();
        expect(res.status, text).toBe(502);
        expect(JSON.parse(text).error.code).toBe('upstream_error');
        expect(text).toMatch(/redirect/);
        for (const m of [marker('secret'), marker('linklocal'), 'see elsewhere', 'meta-data', String(secret.port)]) expect(text).not.toContain(m);
      }
    }
    expect(redirector.seen.length).toBeGreaterThanOrEqual(4);
    expect(secret.seen).toHaveLength(0);
    expect(linkLocal.seen).toHaveLength(1); // only the host's own check in the test above
  });

  it('Hangar\'s provider test refuses private, loopback and link-local targets unless allowlisted, and does not follow redirects', async () => {
    const dave = await createTestUser(scene.h);
    const make = async (name: string, baseUrl: string) => {
      const res = await dave.api('/api/me/providers', { body: { name, displayName: name, type: 'custom', baseUrl, models: [] } });
      expect(res.status, await res.clone().text()).toBe(201);
      return (await res.json()).id as string;
    };
    const test = async (id: string) => {
      const res = await dave.api(`/api/me/providers/${id}/test`, { method: 'POST' });
      return { status: res.status, body: await res.json() };
    };
    const refused = {
      linklocal: await make('ll', `http://${linkLocal.address}:${linkLocal.port}/v1`),
      private: await make('pn', `http://${privateNet.address}:${privateNet.port}/v1`),
      loopback: await make('lo', `http://127.0.0.1:${hostOnly.port}/v1`),
      hostport: await make('hp', `http://host.docker.internal:${hostOnly.port}/v1`),
      byname: await make('nm', `http://localhost:${hostOnly.port}/v1`),
    };
    for (const [what, id] of Object.entries(refused)) {
      const got = await test(id);
      expect(got.status, what).toBe(400);
      expect(got.body.error.code, what).toBe('egress_refused');
      expect(got.body.error.message, what).toMatch(/private, loopback or link-local/);
    }
    expect(linkLocal.seen).toHaveLength(1);
    expect(privateNet.seen).toHaveLength(1); // the agent's, while it was allowlisted
    expect(hostOnly.seen).toHaveLength(0);

    // Allowlisted: the host port and the private network are called.
    await setAllow([`host:${scene.fake.port}`, `host:${hostOnly.port}`, `host:${redirector.port}`, `${privateNet.address}/32`]);
    for (const id of [refused.private, refused.loopback, refused.hostport, refused.byname]) expect((await test(id)).body).toMatchObject({ ok: true });
    expect(hostOnly.seen).toEqual(['GET /v1/models', 'GET /v1/models', 'GET /v1/models']);
    expect((await test(refused.linklocal)).status).toBe(400);

    // A redirect is reported, not followed (even to an allowlisted port).
    const redirecting = await make('rd', `http://127.0.0.1:${redirector.port}/to-secret/v1`);
    const got = await test(redirecting);
    expect(got.body).toMatchObject({ ok: false, error: expect.stringMatching(/redirect \(HTTP 302\)/) });
    expect(secret.seen).toHaveLength(0);
  });

  it('an admin reads the allowlist and its source; bad entries are refused with every problem listed', async () => {
    const res = await admin.api('/api/admin/egress');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ source: 'settings', policy: 'on', defaultAllow: [`host:${scene.fake.port}`] });
    const bad = await admin.api('/api/admin/egress', { method: 'PUT', body: { allow: ['host:0', '10.0.0.0/8:80', 'example.com'] } });
    expect(bad.status).toBe(400);
    const body = await bad.json();
    expect(body.error.code).toBe('invalid_allowlist');
    expect(body.error.details).toHaveLength(2);
    expect((await alice.api('/api/admin/egress')).status).toBe(403);
  });
});
