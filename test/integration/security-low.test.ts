import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asSystem } from '../../core/db.ts';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import { createTestUser, eventually, freshDatabase, startHangar, useScene, type Hangar, type TestUser } from '../support/hangar.harness.ts';
import { giveProvider } from '../support/scenario.ts';

// The low-severity findings of the security review, each performed as the
// attack it describes against a real Hangar.

/** A raw request: fetch would normalise nothing here, but this keeps the path byte for byte. */
function rawGet(base: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path, method: 'GET', headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Reads an open event stream until it ends (or the bound passes); returns what arrived. */
async function readToEnd(res: Response, timeoutMs: number): Promise<{ text: string; ended: boolean }> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    const next = await Promise.race([
      reader.read().catch(() => ({ done: true, value: undefined })),
      new Promise<null>((r) => setTimeout(() => r(null), Math.max(1, deadline - Date.now()))),
    ]);
    if (next === null) break;
    if (next.done) return { text, ended: true };
    text += decoder.decode(next.value, { stream: true });
  }
  await reader.cancel().catch(() => undefined);
  return { text, ended: false };
}

/** Waits for the first chunk of an open stream, so we know it is really open. */
async function firstChunk(res: Response): Promise<string> {
  const reader = res.body!.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  return new TextDecoder().decode(value);
}

describe('security review fixes (onboarded instance)', () => {
  const scene = useScene({ overrides: { HANGAR_MAX_STREAMS_PER_USER: '2' } });
  let slow: Awaited<ReturnType<typeof startFakeOpenAI>>;
  let admin: TestUser;

  beforeAll(async () => {
    // One word a second: a streamed answer stays in flight long enough to be cut.
    slow = await startFakeOpenAI({ chunkDelayMs: 1000 });
    admin = await createTestUser(scene.h, 'admin');
    // The slow upstream is on this machine too: the admin allowlists it as well (applied by the scene's worker).
    const allowed = await admin.api('/api/admin/egress', { method: 'PUT', body: { allow: [`host:${scene.fake.port}`, `host:${slow.port}`] } });
    expect(allowed.status).toBe(200);
  });
  afterAll(async () => {
    // The run's database is shared: leave the allowlist as the environment default for later files.
    await scene.h.core.settings.clearEgress();
    await slow?.close();
  });

  it('GET /api/chat/sessions never creates or starts an agent (a cross-site GET boots nothing)', async () => {
    const victim = await createTestUser(scene.h);
    await giveProvider(victim, scene.fake);
    const agentRows = () => asSystem(scene.h.core.db, (tx) => tx.agent.findMany({ where: { ownerId: victim.id } }));

    // No agent yet: an empty history, and still no agent.
    const none = await victim.api('/api/chat/sessions');
    expect(none.status).toBe(200);
    expect(await none.json()).toEqual({ sessions: [], agentRunning: false });
    expect(await agentRows()).toEqual([]);

    // A stopped agent (made by a settings change, never started) stays stopped, with no container.
    const patched = await victim.api('/api/me/agent', { method: 'PATCH', body: { idleTimeoutMin: 5 } });
    expect(patched.status).toBe(200);
    const agentId = (await patched.json()).id;
    scene.agentIds.push(agentId);
    const before = (await agentRows())[0];
    const stopped = await victim.api('/api/chat/sessions');
    expect(stopped.status).toBe(200);
    expect(await stopped.json()).toEqual({ sessions: [], agentRunning: false });
    const after = (await agentRows())[0];
    expect(after.status).toBe(before.status);
    expect(after.status).not.toBe('running');
    expect(after.containerId).toBe(before.containerId);
    await expect(scene.h.docker.getContainer(`hangar-agent-${agentId}`).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });

  it('one user cannot hold every live stream: per-user cap with a clear 429', async () => {
    const greedy = await createTestUser(scene.h);
    const other = await createTestUser(scene.h);
    const controller = new AbortController();
    try {
      const open = [];
      for (let i = 0; i < 2; i++) {
        const res = await greedy.api('/api/me/agent/events', { headers: { accept: 'text/event-stream' } });
        expect(res.status).toBe(200);
        open.push(res);
        await firstChunk(res);
      }
      const third = await greedy.api('/api/me/agent/events');
      expect(third.status).toBe(429);
      expect(third.headers.get('retry-after')).toBeTruthy();
      expect((await third.json()).error.code).toBe('too_many_streams');
      // Someone else still gets theirs.
      const theirs = await fetch(`${scene.h.url}/api/me/agent/events`, { headers: { authorization: `Bearer ${other.token}` }, signal: controller.signal });
      expect(theirs.status).toBe(200);
      // A closed stream frees its slot.
      await open[0].body!.cancel();
      const again = await eventually(async () => {
        const res = await greedy.api('/api/me/agent/events');
        if (res.status === 200) return res;
        await res.body?.cancel();
        return null;
      }, 'the slot of the closed stream', 20_000);
      await again.body!.cancel();
      await open[1].body!.cancel();
    } finally {
      controller.abort();
    }
  });

  it('deactivation ends the user\'s live streams and in-flight chats at once', async () => {
    const victim = await createTestUser(scene.h);
    await giveProvider(victim, slow);
    const started = await victim.api('/api/me/agent/start', { method: 'POST' });
    expect(started.status, await started.clone().text()).toBe(200);
    scene.agentIds.push((await started.json()).id);

    const events = await victim.api('/api/me/agent/events');
    expect(events.status).toBe(200);
    expect(await firstChunk(events)).toContain('event: agent');

    // Sixty words at one a second: this answer would stream for a minute.
    const words = Array.from({ length: 60 }, (_, i) => `w${i}`).join(' ');
    const chat = await victim.api('/api/chat', { body: { messages: [{ role: 'user', content: words }], stream: true } });
    expect(chat.status).toBe(200);
    expect(await firstChunk(chat)).toContain('data:');

    const deactivated = await admin.api(`/api/admin/users/${victim.id}/deactivate`, { method: 'POST' });
    expect(deactivated.status).toBe(200);

    const [streamEnd, chatEnd] = await Promise.all([readToEnd(events, 20_000), readToEnd(chat, 20_000)]);
    expect(streamEnd.ended).toBe(true);
    expect(streamEnd.text).toContain('event: end');
    expect(streamEnd.text).toContain('account_deactivated');
    expect(chatEnd.ended).toBe(true);
    // Cut short: the answer never finished.
    expect(chatEnd.text).not.toContain('[DONE]');
    expect(chatEnd.text).not.toContain('w59');
    // And the credentials are dead: no reconnecting.
    expect((await victim.api('/api/me/agent/events')).status).toBe(401);
  });

  it('/metrics needs an admin token with the admin scope; /readyz details only for admins', async () => {
    const member = await createTestUser(scene.h);
    expect((await fetch(`${scene.h.url}/metrics`)).status).toBe(401);
    expect((await member.api('/metrics')).status).toBe(403);
    const narrow = await scene.h.core.users.createToken(admin.id, 'agent only', undefined, ['agent']);
    const narrowRes = await fetch(`${scene.h.url}/metrics`, { headers: { authorization: `Bearer ${narrow.token}` } });
    expect(narrowRes.status).toBe(403);
    expect((await narrowRes.json()).error.code).toBe('insufficient_scope');
    const scrape = await scene.h.core.users.createToken(admin.id, 'prometheus', undefined, ['admin']);
    const metrics = await fetch(`${scene.h.url}/metrics`, { headers: { authorization: `Bearer ${scrape.token}` } });
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('hangar_http_request_duration_seconds');

    const anonymous = await fetch(`${scene.h.url}/readyz`);
    expect(Object.keys(await anonymous.json())).toEqual(['status']);
    expect(Object.keys(await (await member.api('/readyz')).json())).toEqual(['status']);
    expect(Object.keys(await (await fetch(`${scene.h.url}/readyz`, { headers: { authorization: `Bearer ${narrow.token}` } })).json())).toEqual(['status']);
    const detailed = await (await fetch(`${scene.h.url}/readyz`, { headers: { authorization: `Bearer ${scrape.token}` } })).json();
    expect(detailed.checks).toMatchObject({ postgres: 'ok' });
  });
});

describe('security review fixes (before onboarding)', () => {
  let h: Hangar;
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let user: TestUser;

  beforeAll(async () => {
    db = await freshDatabase({ onboarded: false });
    h = await startHangar({ DATABASE_URL: db.url }, { worker: false });
    user = await createTestUser(h, 'admin');
  });
  afterAll(async () => {
    await h?.stop();
    await db?.drop();
  });

  it('the onboarding gate cannot be bypassed with a percent-encoded path', async () => {
    const auth = { authorization: `Bearer ${user.token}` };
    for (const path of ['/api/me/providers', '/%61pi/me/providers', '/api/me/%70roviders', '/%61%70%69/tokens', '/api/admin/%75sers']) {
      const res = await rawGet(h.url, path, auth);
      expect(res.status, `${path}: ${res.body}`).toBe(409);
      expect(JSON.parse(res.body).error.code, path).toBe('onboarding_required');
    }
    // What the gate leaves open stays open, however it is spelt.
    expect((await rawGet(h.url, '/%61pi/auth/config')).status).toBe(200);
  });

  it('/metrics and /readyz details are not public before onboarding', async () => {
    expect((await fetch(`${h.url}/metrics`)).status).toBe(401);
    const ready = await (await fetch(`${h.url}/readyz`)).json();
    expect(ready.checks).toBeUndefined();
    const scrape = await h.core.users.createToken(user.id, 'prometheus', undefined, ['admin']);
    expect((await fetch(`${h.url}/metrics`, { headers: { authorization: `Bearer ${scrape.token}` } })).status).toBe(200);
  });
});
