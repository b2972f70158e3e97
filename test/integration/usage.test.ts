import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { asSystem, asUser, type Db } from '../../core/db.ts';
import { createUsageService } from '../../core/services/usage.service.ts';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import { createTestUser, eventually, useScene, type TestUser } from '../support/hangar.harness.ts';
import { giveProvider } from '../support/scenario.ts';
import { join, makeWorkspace, person, workspaceProvider } from '../support/teams.ts';

// Usage and budgets on the real stack: the reference agent answers through a
// fake upstream that reports 30 tokens in and 10 out per answer, the proxy
// meters them, and a monthly budget of 100 tokens is driven past: 40 % after
// one chat, the 80 % warning after two, 429 budget_exceeded (with when it
// resets) once three have used 120, before the agent is asked again.

type FakeOpenAI = Awaited<ReturnType<typeof startFakeOpenAI>>;
const PER_CHAT = { prompt_tokens: 30, completion_tokens: 10 };

function nextMonth(now = new Date()): string {
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1)).toISOString();
}

describe('usage and budgets', () => {
  let fake: FakeOpenAI;
  const overrides: Record<string, string> = { HANGAR_USAGE_FLUSH_MS: '200' };
  // Before the scene's own setup: its Hangar must allowlist this upstream.
  beforeAll(async () => {
    fake = await startFakeOpenAI({ chunkDelayMs: 0, usage: PER_CHAT });
    overrides.HANGAR_EGRESS_ALLOW = `host:${fake.port}`;
  });
  const scene = useScene({ overrides });
  afterAll(async () => {
    await fake?.close();
  });

  let admin: TestUser;
  let alice: TestUser;
  let bob: TestUser;
  const send = (who: TestUser, content: string, extra: Record<string, unknown> = {}) =>
    who.api('/api/chat', { body: { messages: [{ role: 'user', content }], ...extra } });
  const usageOf = async (who: TestUser) => {
    const res = await who.api('/api/me/usage');
    expect(res.status, await res.clone().text()).toBe(200);
    return res.json();
  };

  beforeAll(async () => {
    admin = await createTestUser(scene.h, 'admin');
    alice = await createTestUser(scene.h);
    bob = await createTestUser(scene.h);
    for (const who of [alice, bob]) {
      await giveProvider(who, fake);
      const started = await who.api('/api/me/agent/start', { method: 'POST' });
      expect(started.status, await started.clone().text()).toBe(200);
      scene.agentIds.push((await started.json()).id);
    }
  });

  it('budgets are set by admins only, validated and audited', async () => {
    expect((await alice.api(`/api/admin/budgets/user/${alice.id}`, { method: 'PUT', body: { monthlyTokens: 1_000_000 } })).status).toBe(403);
    expect((await admin.api(`/api/admin/budgets/user/${alice.id}`, { method: 'PUT', body: { monthlyTokens: 0 } })).status).toBe(400);
    expect((await admin.api(`/api/admin/budgets/user/${alice.id}`, { method: 'PUT', body: { monthlyTokens: 100, extra: 1 } })).status).toBe(400);
    expect((await admin.api(`/api/admin/budgets/team/${alice.id}`, { method: 'PUT', body: { monthlyTokens: 100 } })).status).toBe(400);
    const missing = await admin.api('/api/admin/budgets/user/no-such-user', { method: 'PUT', body: { monthlyTokens: 100 } });
    expect(missing.status).toBe(404);
    expect((await admin.api(`/api/admin/budgets/user/${bob.id}`)).status).toBe(404);

    const set = await admin.api(`/api/admin/budgets/user/${alice.id}`, { method: 'PUT', body: { monthlyTokens: 100 } });
    expect(set.status, await set.clone().text()).toBe(200);
    expect(await set.json()).toMatchObject({ scope: 'user', targetId: alice.id, monthlyTokens: 100, used: 0, state: 'ok', resetsAt: nextMonth() });
    const listed = await (await admin.api('/api/admin/budgets')).json();
    expect(listed.data).toContainEqual(expect.objectContaining({ scope: 'user', targetId: alice.id, monthlyTokens: 100 }));
    const audit = await scene.h.core.audit.list({ action: 'budget.', target: `user:${alice.id}` }, 1, 10);
    expect(audit.rows[0]).toMatchObject({ actorId: admin.id, action: 'budget.set', before: null, after: { monthlyTokens: 100 } });
  });

  it('drives a user past the budget: 40 %, the 80 % warning, then 429 budget_exceeded with the reset time, before the agent is asked', async () => {
    const plain = await send(alice, 'first');
    expect(plain.status, await plain.clone().text()).toBe(200);
    expect((await plain.json()).usage).toMatchObject({ prompt_tokens: 30, completion_tokens: 10 });
    let mine = await usageOf(alice);
    expect(mine.budgets).toEqual([expect.objectContaining({ scope: 'user', monthlyTokens: 100, used: 40, percent: 40, state: 'ok' })]);
    expect(mine.state).toBe('ok');

    // Streamed: the usage rides in the last SSE chunk, read as it passes.
    const streamed = await send(alice, 'second', { stream: true });
    expect(streamed.status).toBe(200);
    expect(streamed.headers.get('content-type')).toContain('text/event-stream');
    const events = await streamed.text();
    expect(events).toContain('"usage"');
    expect(events).toContain('data: [DONE]');
    mine = await usageOf(alice);
    expect(mine).toMatchObject({ state: 'warning', warnPercent: 80, resetsAt: nextMonth() });
    expect(mine.budgets[0]).toMatchObject({ used: 80, percent: 80, state: 'warning' });

    // Under the budget still (80 < 100): this one is answered and takes the total to 120.
    expect((await send(alice, 'third')).status).toBe(200);
    const asked = fake.seen.length;
    const refused = await send(alice, 'fourth');
    expect(refused.status).toBe(429);
    const body = await refused.json();
    expect(body.error).toMatchObject({ code: 'budget_exceeded', details: { scope: 'user', monthlyTokens: 100, used: 120, resetsAt: nextMonth() } });
    expect(body.error.message).toContain(nextMonth());
    const retryAfter = Number(refused.headers.get('retry-after'));
    const untilReset = (Date.parse(nextMonth()) - Date.now()) / 1000;
    expect(retryAfter).toBeGreaterThan(untilReset - 60);
    expect(retryAfter).toBeLessThanOrEqual(Math.ceil(untilReset) + 1);
    expect(fake.seen.length).toBe(asked);
    mine = await usageOf(alice);
    expect(mine.state).toBe('exceeded');

    // Stored, once flushed: 3 answers, 90 in, 30 out, per agent and model.
    mine = await eventually(async () => {
      const u = await usageOf(alice);
      return u.totals.requests === 3 ? u : null;
    }, 'the flushed usage rows', 15_000);
    expect(mine.totals).toEqual({ tokensIn: 90, tokensOut: 30, requests: 3 });
    expect(mine.rows).toEqual([expect.objectContaining({ workspaceId: null, tokensIn: 90, tokensOut: 30, requests: 3 })]);
  });

  it("a user's usage is theirs only (the API and row-level security)", async () => {
    expect((await send(bob, 'bob here')).status).toBe(200);
    const his = await eventually(async () => {
      const u = await usageOf(bob);
      return u.totals.requests === 1 ? u : null;
    }, "bob's flushed usage", 15_000);
    expect(his.totals).toEqual({ tokensIn: 30, tokensOut: 10, requests: 1 });
    expect(his.budgets).toEqual([]);
    expect(his.state).toBe('ok');
    expect(JSON.stringify(his)).not.toContain(alice.id);
    // Read as bob, whatever the query asks: only bob's rows.
    const rows = await asUser(scene.h.core.db, bob.id, (tx) => tx.usageBucket.findMany());
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((r) => r.userId === bob.id)).toBe(true);
    // Without a caller nothing; budgets are admins' (system) business, alice's own included; writes are the flusher's.
    expect(await scene.h.core.db.usageBucket.findMany()).toEqual([]);
    expect(await asUser(scene.h.core.db, alice.id, (tx) => tx.usageBudget.findMany())).toEqual([]);
    await expect(asUser(scene.h.core.db, bob.id, (tx) => tx.usageBucket.updateMany({ data: { tokensIn: 0 } }))).resolves.toEqual({ count: 0 });
    expect((await bob.api('/api/admin/usage')).status).toBe(403);
  });

  it('admins see the totals per user and per model, and /metrics counts the tokens', async () => {
    const res = await admin.api('/api/admin/usage');
    expect(res.status, await res.clone().text()).toBe(200);
    const t = await res.json();
    expect(t.byUser).toContainEqual(expect.objectContaining({ userId: alice.id, tokensIn: 90, tokensOut: 30, requests: 3 }));
    expect(t.byUser).toContainEqual(expect.objectContaining({ userId: bob.id, tokensIn: 30, tokensOut: 10, requests: 1 }));
    expect(t.totals.tokensIn).toBeGreaterThanOrEqual(120);
    expect(t.byModel.length).toBeGreaterThan(0);
    expect((await admin.api('/api/admin/usage?month=2020-13')).status).toBe(400);
    const old = await (await admin.api('/api/admin/usage?month=2020-01')).json();
    expect(old.totals).toEqual({ tokensIn: 0, tokensOut: 0, requests: 0 });

    const metrics = await (await admin.api('/metrics')).text();
    const tokens = (direction: string) =>
      metrics.split('\n').filter((l) => l.startsWith(`hangar_usage_tokens_total{direction="${direction}"`)).reduce((s, l) => s + Number(l.split(' ').at(-1)), 0);
    expect(tokens('in')).toBeGreaterThanOrEqual(120);
    expect(tokens('out')).toBeGreaterThanOrEqual(40);
    expect(metrics).toMatch(/hangar_budget_refusals_total\{scope="user"\} [1-9]/);
  });

  it('removing the budget lets the user chat again (audited)', async () => {
    const removed = await admin.api(`/api/admin/budgets/user/${alice.id}`, { method: 'DELETE' });
    expect(removed.status).toBe(204);
    expect((await admin.api(`/api/admin/budgets/user/${alice.id}`, { method: 'DELETE' })).status).toBe(404);
    expect((await send(alice, 'free again')).status).toBe(200);
    expect((await usageOf(alice)).budgets).toEqual([]);
    const rows = await scene.h.core.audit.list({ action: 'budget.remove', target: `user:${alice.id}` }, 1, 10);
    expect(rows.rows[0]).toMatchObject({ actorId: admin.id, before: { monthlyTokens: 100 }, after: null });
  });

  it("a workspace budget binds the chats through the workspace's agent", async () => {
    const owner = await person(scene.h, 'Owner');
    const mia = await person(scene.h, 'Mia');
    const ws = await makeWorkspace(owner, 'usage');
    await join(owner, ws.slug, mia, 'member');
    await workspaceProvider(owner, ws.slug, fake);
    const started = await owner.api(`/api/workspaces/${ws.slug}/agent/start`, { method: 'POST' });
    expect(started.status, await started.clone().text()).toBe(200);
    const agentId = (await started.json()).id as string;
    scene.agentIds.push(agentId);

    const set = await admin.api(`/api/admin/budgets/workspace/${ws.id}`, { method: 'PUT', body: { monthlyTokens: 40 } });
    expect(set.status, await set.clone().text()).toBe(200);
    expect((await send(mia, 'team chat', { agentId })).status).toBe(200);
    // Mia sees the workspace's budget she chats under, used up by her one answer.
    const hers = await usageOf(mia);
    expect(hers.budgets).toEqual([expect.objectContaining({ scope: 'workspace', targetId: ws.id, used: 40, state: 'exceeded' })]);
    // Any member is refused now, the owner too.
    const refused = await send(owner, 'my turn', { agentId });
    expect(refused.status).toBe(429);
    expect((await refused.json()).error).toMatchObject({ code: 'budget_exceeded', details: { scope: 'workspace', resetsAt: nextMonth() } });
    const t = await eventually(async () => {
      const all = await (await admin.api('/api/admin/usage')).json();
      return all.byWorkspace.find((w: { workspaceId: string }) => w.workspaceId === ws.id);
    }, 'the workspace in the admin totals', 15_000);
    expect(t).toMatchObject({ tokensIn: 30, tokensOut: 10, requests: 1 });
    await admin.api(`/api/admin/budgets/workspace/${ws.id}`, { method: 'DELETE' });
  });

  it('a flush whose write fails keeps its batch: the tokens still count against the budget, and the next flush writes them once', async () => {
    const user = await createTestUser(scene.h);
    const agentId = randomUUID();
    // The database as this usage service sees it: its next transaction fails, as if Postgres blinked mid-flush.
    let failures = 0;
    const real = scene.h.core.db;
    const db = new Proxy(real, {
      get(target, prop, receiver) {
        if (prop !== '$transaction') return Reflect.get(target, prop, receiver);
        return (...args: Parameters<Db['$transaction']>) => (failures-- > 0 ? Promise.reject(new Error('connection lost')) : (target.$transaction as (...a: unknown[]) => unknown)(...args));
      },
    }) as Db;
    const usage = createUsageService({ db, flushMs: 3_600_000 });
    await usage.flush();
    await usage.setBudget('user', user.id, 15, admin.id);
    usage.record({ userId: user.id, agentId, workspaceId: null, model: 'm', tokensIn: 7, tokensOut: 3 });
    failures = 1;
    await expect(usage.flush()).rejects.toThrow('connection lost');
    const stored = () => asSystem(real, (tx) => tx.usageBucket.findMany({ where: { userId: user.id } }));
    expect(await stored()).toEqual([]);
    // Not written, not lost: still counted for the budget checks.
    usage.record({ userId: user.id, agentId, workspaceId: null, model: 'm', tokensIn: 4, tokensOut: 1 });
    expect(usage.overBudget(user.id, null)).toMatchObject({ scope: 'user', used: 15 });
    await usage.flush();
    expect(await stored()).toEqual([expect.objectContaining({ agentId, model: 'm', tokensIn: 11n, tokensOut: 4n, requests: 2 })]);
    // Counted once after the re-read: what is stored, nothing left pending.
    expect(usage.overBudget(user.id, null)).toMatchObject({ used: 15 });
    await usage.removeBudget('user', user.id);
    await usage.stop();
  });
});
