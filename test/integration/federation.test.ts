import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { fingerprintOf, generateKeyPair, privateKeyFrom, signRequest } from '../../core/federation-signatures.ts';
import { parseConfig } from '../../core/config.ts';
import { asSystem } from '../../core/db.ts';
import { createCore } from '../../core/hangar.ts';
import { repoRoot } from '../../core/runtime/stack.runtime.ts';
import { startTemporalDevServer, type RunningTemporal } from '../../core/runtime/temporal-dev.runtime.ts';
import { createTestUser, eventually, freshDatabase, removeAgentsFromDocker, spawnWorker, startHangar, type Hangar, type TestUser } from '../support/hangar.harness.ts';
import { freePort } from '../support/ports.ts';

// Two Hangars on loopback — a hub and a spoke, each with its own API port,
// database and Temporal namespace (one dev server) — federated with signed
// commands. The hub reaches the spoke through a small TCP relay the test can
// switch off, so "the spoke is down" is a refused connection, exactly.

/** A TCP relay to `target`; `down()` refuses connections (accepts and resets them, counting each). */
async function relay(target: number) {
  const port = await freePort();
  let up = true;
  let refused = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    if (!up) {
      refused++;
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(target, '127.0.0.1');
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${port}`,
    get refused() {
      return refused;
    },
    down() {
      up = false;
      for (const s of sockets) s.destroy();
    },
    up() {
      up = true;
    },
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

describe('federation: a hub runs agents on a spoke with signed commands', () => {
  let temporal: RunningTemporal;
  const dbs: Array<Awaited<ReturnType<typeof freshDatabase>>> = [];
  let hub: Hangar;
  let spoke: Hangar;
  let hubAdmin: TestUser;
  let spokeAdmin: TestUser;
  let toSpoke: Awaited<ReturnType<typeof relay>>;
  let spokePeerOnHub: { id: string };
  let hubPeerOnSpoke: { id: string; instanceId: string };
  const spokeAgents = async () => asSystem(spoke.core.db, (tx) => tx.agent.findMany({ where: { ownerKind: 'federated' } }));

  beforeAll(async () => {
    temporal = await startTemporalDevServer({
      port: await freePort(),
      headless: true,
      namespaces: ['hub', 'spoke'],
      logFile: path.join(inject('stack').dataDir, `temporal-federation-${process.pid}.log`),
    });
    for (let i = 0; i < 2; i++) dbs.push(await freshDatabase());
    const common = { TEMPORAL_ADDRESS: temporal.address, HANGAR_FEDERATION_STATUS_INTERVAL_SEC: '5' };
    hub = await startHangar({ ...common, DATABASE_URL: dbs[0].url, TEMPORAL_NAMESPACE: 'hub', HANGAR_INSTANCE_NAME: 'hub' });
    spoke = await startHangar({ ...common, DATABASE_URL: dbs[1].url, TEMPORAL_NAMESPACE: 'spoke', HANGAR_INSTANCE_NAME: 'spoke' });
    hubAdmin = await createTestUser(hub, 'admin');
    spokeAdmin = await createTestUser(spoke, 'admin');
    toSpoke = await relay(Number(new URL(spoke.url).port));
  });

  afterAll(async () => {
    const left = spoke ? await spokeAgents().catch(() => []) : [];
    if (spoke) await removeAgentsFromDocker(spoke.docker, left.map((a) => a.id));
    await toSpoke?.close();
    await hub?.stop();
    await spoke?.stop();
    await temporal?.stop();
    for (const db of dbs) await db.drop();
  });

  it('publishes an identity; peers are added by URL and the expected key, and a mismatch is refused', async () => {
    const hubId = await (await fetch(`${hub.url}/api/federation/identity`)).json();
    const spokeId = await (await fetch(`${spoke.url}/api/federation/identity`)).json();
    expect(hubId).toMatchObject({ name: 'hub', url: hub.url, algorithm: 'ed25519', fingerprint: expect.stringMatching(/^SHA256:/), previousKeys: [] });
    expect(hubId.publicKey).not.toBe(spokeId.publicKey);

    const wrong = await hubAdmin.api('/api/admin/federation/peers', { body: { name: 'spoke', url: toSpoke.url, fingerprint: hubId.fingerprint, direction: 'outbound' } });
    expect(wrong.status).toBe(409);
    expect((await wrong.json()).error.code).toBe('peer_key_mismatch');
    expect((await (await hubAdmin.api('/api/admin/federation/peers')).json()).data).toEqual([]);

    const added = await hubAdmin.api('/api/admin/federation/peers', { body: { name: 'spoke', url: toSpoke.url, fingerprint: spokeId.fingerprint, direction: 'outbound' } });
    expect(added.status).toBe(201);
    spokePeerOnHub = await added.json();
    expect(spokePeerOnHub).toMatchObject({ instanceId: spokeId.instanceId, instanceUrl: spoke.url, url: toSpoke.url });

    const inbound = await spokeAdmin.api('/api/admin/federation/peers', { body: { name: 'hub', url: hub.url, publicKey: hubId.publicKey, direction: 'inbound', agentLimit: 2 } });
    expect(inbound.status).toBe(201);
    hubPeerOnSpoke = await inbound.json();
  });

  async function spawn(name: string) {
    const res = await hubAdmin.api(`/api/admin/federation/peers/${spokePeerOnHub.id}/agents`, { body: { name, primaryModel: 'fake/echo' } });
    expect(res.status).toBe(201);
    const body = await res.json();
    expect(body.workflowId).toBe(`federation/${spokePeerOnHub.id}/${body.id}`);
    return body as { id: string; workflowId: string; status: string };
  }
  const remote = async (id: string) => (await hubAdmin.api(`/api/admin/federation/agents/${id}`)).json();
  const runningOnHub = (id: string, timeoutMs = 90_000) => eventually(async () => {
    const a = await remote(id);
    return a.status === 'running' ? a : null;
  }, `remote agent ${id} running`, timeoutMs);

  it('spawns on the spoke from the hub: running, status reported, killed and removed', async () => {
    const created = await spawn('research');
    const running = await runningOnHub(created.id);
    expect(running.remoteAgentId).toBeTruthy();
    // The spoke runs it through its own lifecycle, owned by the peer, with the hub's display name and nothing else of the hub's.
    const [row] = (await spokeAgents()).filter((a) => a.id === running.remoteAgentId);
    expect(row).toMatchObject({ ownerKind: 'federated', ownerId: hubPeerOnSpoke.id, name: created.id, displayName: 'research', status: 'running' });
    expect((await spoke.docker.getContainer(row.containerName).inspect()).State.Running).toBe(true);
    // Status keeps being reported: the hub's lastSeenAt moves with the refreshes.
    const seen = running.lastSeenAt;
    await eventually(async () => (await remote(created.id)).lastSeenAt !== seen, 'a status refresh', 30_000);

    const killed = await hubAdmin.api(`/api/admin/federation/agents/${created.id}`, { method: 'DELETE' });
    expect(killed.status).toBe(200);
    await eventually(async () => (await remote(created.id)).status === 'removed', 'the remote agent removed', 60_000);
    expect((await spokeAgents()).some((a) => a.id === row.id)).toBe(false);
    await expect(spoke.docker.getContainer(row.containerName).inspect()).rejects.toMatchObject({ statusCode: 404 });
    await expect(spoke.docker.getVolume(row.volumeName).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });

  it('refuses a bad signature, an unknown peer, a replayed request and a request 10 minutes old, each with its own 4xx and fleet event; nothing runs', async () => {
    const hubSigner = await hub.core.federationIdentity.signer();
    const target = `${spoke.url}/api/federation/commands`;
    const send = async (opts: { keyid?: string; privateKey?: ReturnType<typeof privateKeyFrom>; created?: Date; type?: string; ref?: string; reuse?: { headers: Record<string, string>; body: string } }) => {
      const ref = opts.ref ?? randomUUID();
      const body = opts.reuse?.body ?? JSON.stringify({
        id: `${ref}/${opts.type ?? 'agent.spawn'}`,
        from: opts.keyid ?? hubSigner.keyid,
        type: opts.type ?? 'agent.spawn',
        payload: opts.type === 'agent.status' ? { ref } : { ref, name: 'sneaky' },
      });
      const headers = opts.reuse?.headers ?? (await signRequest({ url: target, method: 'POST', body, keyid: opts.keyid ?? hubSigner.keyid, privateKey: opts.privateKey ?? hubSigner.privateKey, created: opts.created })).headers;
      const res = await fetch(target, { method: 'POST', headers, body });
      return { status: res.status, code: res.status >= 400 ? (await res.json()).error.code : null, headers, body };
    };
    const before = (await spokeAgents()).length;
    const stranger = privateKeyFrom(generateKeyPair().privateKey);
    expect(await send({ privateKey: stranger })).toMatchObject({ status: 401, code: 'bad_signature' });
    expect(await send({ keyid: randomUUID(), privateKey: stranger })).toMatchObject({ status: 401, code: 'unknown_peer' });
    expect(await send({ created: new Date(Date.now() - 10 * 60_000) })).toMatchObject({ status: 400, code: 'stale_signature' });
    const unsigned = await fetch(target, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect([unsigned.status, (await unsigned.json()).error.code]).toEqual([401, 'bad_signature']);
    // A genuine status command is answered once; the same request again is a replay.
    const first = await send({ type: 'agent.status' });
    expect(first.status).toBe(200);
    expect(await send({ reuse: first })).toMatchObject({ status: 409, code: 'replayed' });
    // A tampered body under a genuine signature: the digest gives it away.
    const tampered = await send({ reuse: { headers: first.headers, body: first.body.replace('agent.status', 'agent.spawn') } });
    expect(tampered).toMatchObject({ status: 400, code: 'bad_digest' });

    expect((await spokeAgents()).length).toBe(before);
    const events = await (await spokeAdmin.api('/api/admin/fleet/events?type=federation.command_refused&limit=50')).json();
    const codes = events.data.map((e: { payload: { code: string } }) => e.payload.code);
    for (const code of ['bad_signature', 'unknown_peer', 'stale_signature', 'replayed', 'bad_digest']) expect(codes).toContain(code);
  });

  it('the spoke down during a spawn: the spawn completes when it returns', async () => {
    toSpoke.down();
    const base = toSpoke.refused;
    try {
      const created = await spawn('while-down');
      await eventually(async () => toSpoke.refused >= base + 2 && (await remote(created.id)).status === 'spawning', 'spawn attempts refused', 60_000);
      toSpoke.up();
      await runningOnHub(created.id);
    } finally {
      toSpoke.up();
    }
  });

  it('the hub\'s worker killed mid-command: the command completes after restart', async () => {
    toSpoke.down();
    const base = toSpoke.refused;
    try {
      const created = await spawn('hub-crash');
      await eventually(async () => toSpoke.refused >= base + 1 && (await remote(created.id)).status === 'spawning', 'the spawn under way', 60_000);
      await hub.worker.kill();
      toSpoke.up();
      hub.worker = await spawnWorker(hub.env);
      await runningOnHub(created.id, 120_000).catch(async (err) => {
        const h = hub.temporal.workflow.getHandle(created.workflowId);
        console.log(JSON.stringify(await h.describe().then((d) => d.raw.pendingActivities), null, 1));
        console.log(JSON.stringify((await h.fetchHistory()).events?.map((e) => [e.eventType, e.activityTaskFailedEventAttributes?.failure?.message ?? e.activityTaskTimedOutEventAttributes?.failure?.message ?? '']), null, 0));
        console.log(await remote(created.id));
        throw err;
      });
    } finally {
      toSpoke.up();
    }
  });

  it('a peer over its agent limit gets 429, runs nothing more, and the hub shows why', async () => {
    const before = (await spokeAgents()).length;
    expect(before).toBe(2);
    const created = await spawn('one-too-many');
    const refused = await eventually(async () => {
      const a = await remote(created.id);
      return a.status === 'refused' ? a : null;
    }, 'the spawn refused', 60_000);
    expect(refused.statusReason).toMatch(/^peer_agent_limit: .*at most 2 agents/);
    expect((await spokeAgents()).length).toBe(2);
    const events = await (await spokeAdmin.api('/api/admin/fleet/events?type=federation.command_refused&limit=50')).json();
    expect(events.data.some((e: { payload: { code: string; status: number } }) => e.payload.code === 'peer_agent_limit' && e.payload.status === 429)).toBe(true);
  });

  it('a rotated hub key: the spoke learns it from the endorsement its commands carry, and accepts the old one for the grace period', async () => {
    const old = await hub.core.federationIdentity.signer();
    const rotated = spawnSync(process.execPath, ['bin/hangar.mjs', 'federation', 'rotate-key', '--grace-hours', '2'], { cwd: repoRoot, env: hub.env, encoding: 'utf8' });
    expect(rotated.status, rotated.stderr).toBe(0);
    const identity = await (await fetch(`${hub.url}/api/federation/identity`)).json();
    expect(identity.previousKeys).toEqual([expect.objectContaining({ publicKey: old.publicKey })]);
    expect(identity.endorsement).toBeTruthy();
    // A fresh core reads the new key at once (the running processes do within seconds).
    const fresh = createCore(parseConfig(hub.env));
    try {
      const signer = await fresh.federationIdentity.signer();
      expect(signer.publicKey).toBe(identity.publicKey);
      const target = `${spoke.url}/api/federation/commands`;
      const status = async (s: typeof signer, endorsement = s.endorsement) => {
        const ref = randomUUID();
        const body = JSON.stringify({ id: `${ref}/agent.status`, from: s.keyid, type: 'agent.status', payload: { ref } });
        const { headers } = await signRequest({ url: target, method: 'POST', body, keyid: s.keyid, privateKey: s.privateKey, endorsement });
        const res = await fetch(target, { method: 'POST', headers, body });
        return res.status === 200 ? 200 : `${res.status} ${(await res.json()).error.code}`;
      };
      // The new key without its endorsement is not the hub's as far as the spoke knows.
      expect(await status(signer, null)).toBe('401 bad_signature');
      expect(await status(signer)).toBe(200);
      const peer = (await (await spokeAdmin.api('/api/admin/federation/peers')).json()).data.find((p: { id: string }) => p.id === hubPeerOnSpoke.id);
      expect(peer.fingerprint).toBe(identity.fingerprint);
      // The spoke's admins see the change of key in the fleet events.
      const events = await (await spokeAdmin.api('/api/admin/fleet/events?type=federation.peer_key_rotated')).json();
      expect(events.data.map((e: { payload: object }) => e.payload)).toEqual([
        expect.objectContaining({ peerId: hubPeerOnSpoke.id, from: fingerprintOf(old.publicKey), to: identity.fingerprint }),
      ]);
      expect(await status(signer, null)).toBe(200);
      expect(await status(old)).toBe(200);
      // An endorsement only the old key could make: a stranger's key with a made-up one is refused.
      const stranger = generateKeyPair();
      expect(await status({ ...signer, privateKey: privateKeyFrom(stranger.privateKey), publicKey: stranger.publicKey }, `${stranger.publicKey}.${identity.endorsement}`)).toBe('401 bad_signature');
    } finally {
      await fresh.close();
    }
  });

  it('removing the peer on the hub kills what runs there', async () => {
    const res = await hubAdmin.api(`/api/admin/federation/peers/${spokePeerOnHub.id}`, { method: 'DELETE' });
    expect(res.status).toBe(200);
    expect((await res.json()).killing).toBe(2);
    await eventually(async () => (await spokeAgents()).length === 0, 'the spoke\'s federated agents removed', 90_000);
    const list = await (await hubAdmin.api('/api/admin/federation/agents')).json();
    await eventually(async () => {
      const now = await (await hubAdmin.api('/api/admin/federation/agents')).json();
      return now.data.every((a: { status: string }) => ['removed', 'refused'].includes(a.status));
    }, 'every remote agent removed on the hub', 30_000);
    expect(list.meta.total).toBe(4);
  });
});
