import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, seeCount, seeText } from '../support/browser.ts';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import { useScene } from '../support/hangar.harness.ts';
import { giveProvider } from '../support/scenario.ts';
import { person, type Person } from '../support/teams.ts';

// The budget banner in a real browser: a user with a monthly budget of 100
// tokens chats through the chat page with an upstream that reports 40 tokens
// an answer. No banner at 40 %, a warning at 80 %, "used up" at 120 %, and
// the next message is refused with the budget_exceeded error shown.

const SHOTS = path.resolve('test-artifacts/screenshots');
const PASSWORD = 'correct horse battery';

describe('usage budget in the web UI', () => {
  let fake: Awaited<ReturnType<typeof startFakeOpenAI>>;
  const overrides: Record<string, string> = { HANGAR_USAGE_FLUSH_MS: '200' };
  beforeAll(async () => {
    fake = await startFakeOpenAI({ chunkDelayMs: 0, usage: { prompt_tokens: 30, completion_tokens: 10 } });
    overrides.HANGAR_EGRESS_ALLOW = `host:${fake.port}`;
  });
  const scene = useScene({ overrides });
  let browser: Browser;
  let user: Person;
  let page: Page;
  const problems: string[] = [];

  beforeAll(async () => {
    await mkdir(SHOTS, { recursive: true });
    browser = await launchBrowser();
    user = await person(scene.h, 'Bea');
    await giveProvider(user, fake);
    const started = await user.api('/api/me/agent/start', { method: 'POST' });
    expect(started.status, await started.clone().text()).toBe(200);
    scene.agentIds.push((await started.json()).id);
    await scene.h.core.usage.setBudget('user', user.id, 100, user.id);
  });
  afterAll(async () => {
    await browser?.close();
    await fake?.close();
  });

  async function say(words: string) {
    await page.getByLabel('Message').fill(words);
    await page.getByRole('button', { name: 'Send' }).click();
    // The button is back once the answer (or the refusal) is in.
    await page.getByRole('button', { name: 'Send' }).waitFor();
  }

  it('warns from 80 %, says when the budget is used up, and shows the refusal', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    await page.goto(`${scene.h.url}/#/chat`);
    await page.getByLabel('Username or email').fill(user.email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Chat' }).waitFor();
    const banner = page.getByTestId('budget-banner');

    await say('one');
    await seeText(page.locator('[data-role="assistant"]').last(), 'echo: one');
    await seeCount(banner, 0);

    await say('two');
    await seeText(page.locator('[data-role="assistant"]').last(), 'echo: two');
    await seeText(banner, '80 % used (80 of 100 tokens)');
    expect(await banner.getAttribute('data-state')).toBe('warning');
    await page.screenshot({ path: path.join(SHOTS, 'chat-budget-warning.png'), fullPage: true });

    await say('three');
    await seeText(banner, 'is used up (120 of 100 tokens)');
    expect(await banner.getAttribute('data-state')).toBe('exceeded');

    await say('four');
    await seeText(page.getByRole('alert'), 'budget_exceeded');
    await page.screenshot({ path: path.join(SHOTS, 'chat-budget-exceeded.png'), fullPage: true });
    expect(fake.seen.filter((s) => s.path === '/v1/chat/completions').length).toBe(3);
    expect(problems).toEqual([]);
  });

  it('the usage page shows my month; the admin page the totals, and budgets set and removed there', async () => {
    await page.getByRole('link', { name: 'Usage', exact: true }).click();
    await page.getByRole('heading', { name: 'My usage' }).waitFor();
    await seeText(page.getByTestId('my-usage-totals'), '90 in · 30 out · 3 answers');
    await seeText(page.getByRole('table', { name: 'My budgets' }).locator(`tr[data-budget="user:${user.id}"]`), 'exceeded');

    const admin = await person(scene.h, 'Ada');
    await scene.h.core.db.user.update({ where: { id: admin.id }, data: { role: 'admin' } });
    const adminPage = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    adminPage.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    adminPage.on('dialog', (d) => void d.accept());
    await adminPage.goto(`${scene.h.url}/#/admin/usage`);
    await adminPage.getByLabel('Username or email').fill(admin.email);
    await adminPage.getByLabel('Password').fill(PASSWORD);
    await adminPage.getByRole('button', { name: 'Sign in' }).click();
    await adminPage.getByRole('heading', { name: 'Usage and budgets' }).waitFor();
    await seeText(adminPage.getByRole('table', { name: 'Users' }), user.name);
    const row = adminPage.locator(`tr[data-budget="user:${user.id}"]`);
    await seeText(row, '120 / 100');
    expect(await row.getAttribute('data-state')).toBe('exceeded');
    await adminPage.screenshot({ path: path.join(SHOTS, 'admin-usage.png'), fullPage: true });

    await row.getByRole('button', { name: 'Remove' }).click();
    await seeCount(row, 0);
    const form = adminPage.getByRole('form', { name: 'Set a budget' });
    await form.getByLabel('User id').fill(user.id);
    await form.getByLabel('Monthly tokens').fill('1000');
    await form.getByRole('button', { name: 'Set budget' }).click();
    await seeText(row, '120 / 1,000');
    expect(await row.getAttribute('data-state')).toBe('ok');
    const audit = await scene.h.core.audit.list({ action: 'budget.', target: `user:${user.id}` }, 1, 10);
    expect(audit.rows.map((r) => [r.action, r.actorId])).toEqual(expect.arrayContaining([['budget.remove', admin.id], ['budget.set', admin.id]]));
    expect(problems).toEqual([]);
  });
});
