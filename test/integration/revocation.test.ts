import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import { createTestUser, eventually, spawnApi, useScene } from '../support/hangar.harness.ts';
import { freePort } from '../support/ports.ts';
import { giveProvider } from '../support/scenario.ts';

// The chat path answers token → user and owner → agent from memory; a
// revocation must still win at once. Two API processes serve the same user
// under load: the scene's (in this process) and a spawned one with its own
// cache, which hears of changes only through Postgres LISTEN/NOTIFY.
type FakeOpenAI = Awaited<ReturnType<typeof startFakeOpenAI>>;
const LOAD_WORKERS = 8;

interface Sent {
  via: 'here' | 'other';
  sentAt: number;
  doneAt: number;
  status: number;
}

/** Reads a response body until it ends (or the bound passes). */
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

describe('revocation with the chat lookups cached', () => {
  let fast: FakeOpenAI;
  let slow: FakeOpenAI;
  const overrides: Record<string, string> = { HANGAR_CHAT_RATE_PER_MIN: '100000' };
  // Before the scene's own setup: its Hangar must allowlist both upstreams.
  beforeAll(async () => {
    fast = await startFakeOpenAI({ chunkDelayMs: 0 });
    slow = await startFakeOpenAI({ chunkDelayMs: 500 });
    overrides.HANGAR_EGRESS_ALLOW = `host:${fast.port},host:${slow.port}`;
  });
  const scene = useScene({ overrides });
  let other: Awaited<ReturnType<typeof spawnApi>>;
  beforeAll(async () => {
    other = await spawnApi(scene.h.env, await freePort());
  });
  afterAll(async () => {
    await other?.kill();
    await fast?.close();
    await slow?.close();
  });

  const urlOf = (via: Sent['via']) => (via === 'here' ? scene.h.url : other.url);

  it('a token revoked while chats are in flight is refused by every request sent after, on both API processes', async () => {
    const user = await createTestUser(scene.h);
    await giveProvider(user, fast);
    const started = await user.api('/api/me/agent/start', { method: 'POST' });
    expect(started.status, await started.clone().text()).toBe(200);
    scene.agentIds.push((await started.json()).id);
    const [chatToken] = await scene.h.core.users.listTokens(user.id);
    const revoker = await scene.h.core.users.createToken(user.id, 'revoker', undefined, ['tokens']);

    const sent: Sent[] = [];
    let revokedAt: number | null = null;
    const body = JSON.stringify({ messages: [{ role: 'user', content: 'still mine?' }] });
    const deadline = Date.now() + 90_000;
    // Each worker alternates between the two processes; it stops once it has
    // seen 20 answers after the revocation (bounded by count and time besides).
    const workers = Array.from({ length: LOAD_WORKERS }, async (_, w) => {
      let after = 0;
      for (let i = 0; i < 5000 && after < 20 && Date.now() < deadline; i++) {
        const via: Sent['via'] = (i + w) % 2 === 0 ? 'here' : 'other';
        const sentAt = performance.now();
        const res = await fetch(`${urlOf(via)}/api/chat`, { method: 'POST', headers: { authorization: `Bearer ${user.token}`, 'content-type': 'application/json' }, body });
        await res.arrayBuffer();
        sent.push({ via, sentAt, doneAt: performance.now(), status: res.status });
        if (revokedAt !== null && sentAt > revokedAt) after++;
      }
    });
    // Revoke only once both processes have served this token from a warm cache.
    await eventually(async () => ['here', 'other'].every((v) => sent.filter((s) => s.via === v && s.status === 200).length >= 20), 'chats served on both processes', 60_000);
    // The cache is really in use here (its LISTEN echo came back), so what follows tests invalidation, not a bypass.
    expect(scene.h.core.cache.active).toBe(true);
    expect(scene.h.core.cache.size().tokens).toBeGreaterThan(0);
    const revokeSentAt = performance.now();
    const revoked = await fetch(`${scene.h.url}/api/tokens/${chatToken.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${revoker.token}` } });
    expect(revoked.status).toBe(204);
    revokedAt = performance.now();
    await Promise.all(workers);

    expect(sent.every((s) => s.status === 200 || s.status === 401), JSON.stringify(sent.filter((s) => s.status !== 200 && s.status !== 401).slice(0, 3))).toBe(true);
    // Under load: chats were on their way while the revocation committed.
    expect(sent.some((s) => s.sentAt < revokeSentAt && s.doneAt > revokeSentAt)).toBe(true);
    // The process that revoked: nothing sent after its answer is served.
    const hereAfter = sent.filter((s) => s.via === 'here' && s.sentAt > revokedAt!);
    expect(hereAfter.length).toBeGreaterThan(0);
    expect(hereAfter.filter((s) => s.status === 200)).toEqual([]);
    // The other process learns through NOTIFY, sent at commit, before the
    // revoking request even answered: nothing sent after the answer is served there either.
    const otherAfter = sent.filter((s) => s.via === 'other' && s.sentAt > revokedAt!);
    expect(otherAfter.length).toBeGreaterThan(0);
    expect(otherAfter.filter((s) => s.status === 200)).toEqual([]);
  });

  it('a user deactivated by another process is cut off on every API process, open streams included', async () => {
    const admin = await createTestUser(scene.h, 'admin');
    const victim = await createTestUser(scene.h);
    await giveProvider(victim, slow);
    const started = await victim.api('/api/me/agent/start', { method: 'POST' });
    expect(started.status, await started.clone().text()).toBe(200);
    scene.agentIds.push((await started.json()).id);
    const chatOn = (url: string, content: string, stream = false) =>
      fetch(`${url}/api/chat`, { method: 'POST', headers: { authorization: `Bearer ${victim.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content }], stream }) });
    // The spawned process has the victim's token and agent in memory.
    for (let i = 0; i < 3; i++) expect((await chatOn(other.url, 'warm')).status).toBe(200);

    // Forty words at two a second: this answer would stream for twenty seconds.
    const words = Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ');
    const streaming = await chatOn(other.url, words, true);
    expect(streaming.status).toBe(200);
    const reader = streaming.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain('data:');
    reader.releaseLock();

    // Deactivated by this process's core: the spawned API hears it from Postgres only.
    await scene.h.core.users.deactivate(admin.id, victim.id);
    const end = await readToEnd(streaming, 15_000);
    expect(end.ended).toBe(true);
    expect(end.text).not.toContain('w39');
    expect(end.text).not.toContain('[DONE]');
    // The stream was cut by the same notification that emptied the cache: refused from now on, everywhere.
    for (const url of [other.url, scene.h.url]) {
      const res = await chatOn(url, 'after');
      expect(res.status, url).toBe(401);
    }
  });
});
