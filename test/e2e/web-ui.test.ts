import { mkdir } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import path from 'node:path';
import { type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTemporalDevServer, type RunningTemporal } from '../../core/runtime/temporal-dev.runtime.ts';
import { agentContainerName } from '../../core/contracts/agent.contract.ts';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import { createTestUser, eventually, freshDatabase, removeAgentsFromDocker, startHangar, type Hangar } from '../support/hangar.harness.ts';
import { freePort } from '../support/ports.ts';
import { giveProvider } from '../support/scenario.ts';
import { buildVersion } from '../support/test-images.ts';
import { launchBrowser, seeCount, seeText } from '../support/browser.ts';

// The web UI in a real browser (Debian's Chromium, driven by playwright-core)
// against the real stack: first boot from an empty database, the live agent
// page, streaming chat, settings, admin pages and a rollout watched to its end.
// Every page is screenshotted into test-artifacts/screenshots/.

const SHOTS = path.resolve('test-artifacts/screenshots');
const repo = `hangar-e2e/agent-${Date.now().toString(36)}`;
const image = `${repo}:stable`;
const ADMIN = { username: 'root-admin', password: 'correct horse battery staple' };

describe('web UI', () => {
  let temporal: RunningTemporal;
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let fake: Awaited<ReturnType<typeof startFakeOpenAI>>;
  let h: Hangar;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const agentIds: string[] = [];
  const problems: string[] = [];

  function watch(p: Page) {
    p.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()} (${p.url()})`);
    });
    p.on('pageerror', (e) => problems.push(`pageerror: ${e.message} (${p.url()})`));
    p.on('dialog', (d) => void d.accept());
    return p;
  }
  const shot = (name: string, p = page) => p.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  const go = async (hash: string) => {
    await page.goto(`${h.url}/#${hash}`);
    await page.waitForLoadState('networkidle').catch(() => undefined);
  };

  beforeAll(async () => {
    await mkdir(SHOTS, { recursive: true });
    [temporal, db, fake] = await Promise.all([
      startTemporalDevServer({ port: await freePort(), headless: true, logFile: path.join(inject('stack').dataDir, 'temporal-e2e.log') }),
      freshDatabase({ onboarded: false }),
      startFakeOpenAI({ chunkDelayMs: 250 }),
    ]);
    await buildVersion(new (await import('dockerode')).default(), inject('stack').agentImage, image, '1.0.0', 'e2e v1');
    h = await startHangar({ DATABASE_URL: db.url, TEMPORAL_ADDRESS: temporal.address, HANGAR_AGENT_IMAGE: image, HANGAR_UPDATE_HEALTH_POLL_MS: '200', HANGAR_EGRESS_ALLOW: `host:${fake.port}` });
    browser = await launchBrowser();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = watch(await context.newPage());
  });

  afterAll(async () => {
    await browser?.close();
    if (h) {
      const rows = await h.core.db.agent.findMany({ select: { id: true } }).catch(() => []);
      await removeAgentsFromDocker(h.docker, [...agentIds, ...rows.map((r) => r.id)]);
    }
    await h?.stop();
    await temporal?.stop();
    await db?.drop();
    await fake?.close();
    await h?.docker.getImage(image).remove({ force: true }).catch(() => undefined);
  });

  it('onboards an empty database through the wizard', async () => {
    await go('/');
    await page.getByRole('heading', { name: 'Set up Hangar' }).waitFor();
    await shot('onboarding');
    await page.getByLabel('Username').fill(ADMIN.username);
    await page.getByLabel('Password (at least 12 characters)').fill(ADMIN.password);
    // The code a person at the console would read off `npm start`.
    await page.getByLabel('Setup code').fill((await h.core.onboarding.setupCode())!);
    await page.getByRole('button', { name: 'Create admin' }).click();
    await page.getByRole('heading', { name: 'Single sign-on (optional)' }).waitFor();
    await page.getByRole('button', { name: 'Skip for now' }).click();
    await page.getByRole('heading', { name: 'First LLM provider' }).waitFor();
    // Resumable: a reload lands on the same step, the done ones marked.
    await page.reload();
    await page.getByRole('heading', { name: 'First LLM provider' }).waitFor();
    await seeText(page.getByRole('list', { name: 'Setup steps' }), 'Breakglass admin: done');
    await page.getByLabel(/^Name/).fill('fake');
    await page.getByLabel('Type').selectOption('custom');
    await page.getByLabel('Base URL').fill(fake.agentBaseUrl);
    await page.getByLabel('API key').fill('sk-e2e-admin-1234');
    await page.getByLabel(/^Models/).fill('fake-model');
    await page.getByRole('button', { name: 'Save and test' }).click();
    await page.getByRole('heading', { name: 'System agents (optional)' }).waitFor();
    await page.getByRole('button', { name: 'Skip' }).click();
    await page.getByRole('button', { name: 'Finish setup' }).click();
    await page.getByRole('heading', { name: 'My agent' }).waitFor();
    expect((await h.core.db.systemConfig.findFirst({ where: { key: { contains: 'onboarding' } } }))).not.toBeNull();
  });

  it('signs out and in again', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in to Hangar' }).waitFor();
    await shot('sign-in');
    await page.getByLabel('Username or email').fill(ADMIN.username);
    const before = problems.length;
    await page.getByLabel('Password').fill('wrong password!!');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await seeText(page.getByRole('alert'), /invalid|wrong|incorrect/i);
    // Chromium logs the refused sign-in's 401 itself; that one we asked for.
    const provoked = problems.splice(before);
    expect(provoked.every((p) => p.includes('401'))).toBe(true);
    await page.getByLabel('Password').fill(ADMIN.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'My agent' }).waitFor();
  });

  it('starts the agent and shows its status change live', async () => {
    await go('/settings');
    // The onboarding provider is the admin's: point the agent at it.
    await page.getByLabel('Agent provider').selectOption({ label: 'fake (fake)' });
    await page.getByLabel(/^Primary model/).fill('fake/fake-model');
    await page.getByRole('button', { name: 'Save config' }).click();
    await seeText(page.getByTestId('config-result'), 'next starts');
    await go('/agent');
    await page.getByRole('button', { name: 'Start', exact: true }).click();
    await page.getByTestId('start-progress').waitFor();
    await seeText(page.getByTestId('agent-status'), 'running', { exact: true, timeout: 60_000 });
    const admin = (await h.core.db.user.findFirst({ where: { username: ADMIN.username } }))!;
    const agent = (await h.core.agents.findOwned('user', admin.id))!;
    agentIds.push(agent.id);
    await shot('my-agent');
    // A change made elsewhere (the admin API) shows up without a reload: server-sent events.
    const { token } = await h.core.users.createToken(admin.id, 'e2e');
    const stopped = await fetch(`${h.url}/api/admin/agents/${agent.id}/stop`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    expect(stopped.status).toBe(200);
    await seeText(page.getByTestId('agent-status'), 'stopped', { exact: true, timeout: 15_000 });
    await page.getByRole('button', { name: 'Start', exact: true }).click();
    await seeText(page.getByTestId('agent-status'), 'running', { exact: true, timeout: 60_000 });
  });

  it('streams a chat answer as it arrives', async () => {
    await go('/chat');
    await page.getByLabel('Message').fill('one two three four five six');
    await page.getByRole('button', { name: 'Send' }).click();
    const bubble = page.locator('.msg.assistant').last();
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const text = (await bubble.textContent().catch(() => '')) ?? '';
      if (text) seen.add(text);
      if (text === 'echo: one two three four five six') break;
      await page.waitForTimeout(50);
    }
    expect([...seen].at(-1)).toBe('echo: one two three four five six');
    // Partial answers were on screen before the whole one.
    expect(seen.size).toBeGreaterThanOrEqual(3);
    // The stream has ended (not just its text) before we leave the page.
    await seeText(page.getByRole('button', { name: /Send|Answering/ }), 'Send', { exact: true });
    await shot('chat');
    // The agent writes its history as the stream ends: a reload a moment later shows it.
    await eventually(async () => {
      await page.reload();
      return (await seeText(page.getByTestId('chat-log'), 'echo: one two three four five six', { timeout: 3000 }).catch(() => null)) !== null;
    }, 'the history after a reload', 30_000);
  });

  it('renders answers as markdown with code blocks, and agent HTML only ever as text', async () => {
    await go('/chat');
    // The fake upstream echoes the message, so the agent's answer carries this markdown and HTML.
    const message = [
      '**bold words** and `inline code`',
      '',
      '```',
      'const x = 1 < 2;',
      '```',
      '',
      '<img src="/nowhere.png" onerror="window.__pwned = true"> <script>window.__pwned = true</script> <b data-agent-html>raw</b>',
      '[click](javascript:window.__pwned=true)',
    ].join('\n');
    const answers = page.locator('.msg.assistant');
    const before = await answers.count();
    await page.getByLabel('Message').fill(message);
    await page.getByRole('button', { name: 'Send' }).click();
    await seeCount(answers, before + 1);
    const bubble = answers.nth(before);
    // The whole answer is in (its last line arrived) and the stream has ended.
    await seeText(bubble, 'click', { timeout: 30_000 });
    await seeText(page.getByRole('button', { name: /Send|Answering/ }), 'Send', { exact: true, timeout: 30_000 });
    await shot('chat-markdown');
    expect(await bubble.locator('strong').textContent(), await bubble.innerHTML()).toBe('bold words');
    expect(await bubble.locator('code').first().textContent()).toBe('inline code');
    expect(await bubble.locator('pre code').textContent()).toContain('const x = 1 < 2;');
    // The agent's HTML is text on the page, never elements.
    expect(await bubble.locator('img, script, [data-agent-html], [onerror]').count()).toBe(0);
    const text = (await bubble.textContent()) ?? '';
    expect(text).toContain('<img src="/nowhere.png"');
    expect(text).toContain('<b data-agent-html>raw</b>');
    // DOMPurify drops the javascript: URL; the link text stays.
    const links = await bubble.locator('a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
    expect(links.every((href) => !href || !/^javascript:/i.test(href))).toBe(true);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: boolean }).__pwned)).toBeUndefined();
  });

  it('adds a provider and tests it; a config change restarts the running agent', async () => {
    await go('/settings');
    await page.getByLabel(/^Name/).fill('second');
    await page.getByLabel('Type').selectOption('custom');
    await page.getByLabel('Base URL').fill(fake.agentBaseUrl);
    await page.getByLabel('API key').fill('sk-e2e-second-5678');
    await page.getByRole('button', { name: 'Add provider' }).click();
    const row = page.locator('tr[data-provider="second"]');
    await row.waitFor();
    await seeText(row, '…5678');
    await row.getByRole('button', { name: 'Test second' }).click();
    await seeText(row.getByTestId('provider-test'), 'Works');
    await shot('settings');

    const admin = (await h.core.db.user.findFirst({ where: { username: ADMIN.username } }))!;
    const agent = (await h.core.agents.findOwned('user', admin.id))!;
    const before = (await h.docker.getContainer(agentContainerName(agent.id)).inspect()).State.StartedAt;
    await page.getByLabel('Personality').fill('Terse and kind.');
    await page.getByRole('button', { name: 'Save config' }).click();
    await seeText(page.getByTestId('config-result'), 'restarts');
    await eventually(async () => (await h.docker.getContainer(agentContainerName(agent.id)).inspect()).State.StartedAt !== before, 'the restart', 60_000);
    await go('/agent');
    await seeText(page.getByTestId('agent-status'), 'running', { exact: true, timeout: 60_000 });
  });

  it('lets an admin deactivate another user, never themselves', async () => {
    const member = await h.core.users.create({ email: 'member-e2e@example.test', displayName: 'Member Example', role: 'member', password: 'member password 1' });
    await go('/admin/users');
    const row = page.locator(`tr[data-user="member-e2e@example.test"]`);
    await row.waitFor();
    expect(await page.locator(`tr[data-user="${ADMIN.username}"]`).getByRole('button', { name: /Deactivate/ }).isDisabled()).toBe(true);
    await seeText(page.locator(`tr[data-user="${ADMIN.username}"]`), 'you cannot deactivate yourself');
    await row.getByRole('button', { name: 'Deactivate Member Example' }).click();
    await seeText(row, 'deactivated');
    expect((await h.core.users.get(member.id)).status).toBe('deactivated');
    await shot('admin-users');
    await go('/admin/agents');
    await page.locator('table').waitFor();
    await shot('admin-agents');
    // Federation: the identity a peer's admin pins, and a peer whose key is not the one expected is refused.
    const identity = await h.core.federationIdentity.identity();
    await go('/admin/federation');
    await seeText(page.locator('[data-fingerprint]'), identity.fingerprint, { exact: true });
    await page.getByLabel('Name', { exact: true }).fill('Not who it says');
    await page.getByLabel('URL', { exact: true }).fill(h.url);
    await page.getByLabel('Expected key fingerprint').fill('SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
    const before = problems.length;
    await page.getByRole('button', { name: 'Add peer' }).click();
    await seeText(page.getByRole('alert'), `presents key ${identity.fingerprint}`);
    // Chromium logs the refusal's 409 itself; that one we asked for.
    expect(problems.splice(before).every((p) => p.includes('409'))).toBe(true);
    expect(await h.core.federation.listPeers()).toEqual([]);
    await shot('admin-federation');
  });

  it('starts a rollout and watches its waves to the end', async () => {
    for (let i = 0; i < 2; i++) {
      const u = await createTestUser(h);
      await giveProvider(u, fake);
      const res = await u.api('/api/me/agent/start', { method: 'POST' });
      expect(res.status).toBe(200);
      agentIds.push((await res.json()).id);
    }
    await go('/admin/fleet');
    await page.getByLabel(/^Image allowlist/).fill('hangar-e2e/');
    await page.getByLabel(/^Channels/).fill('');
    await page.getByLabel('Wave size (% of agents)').fill('33');
    await page.getByLabel('Pause between waves (seconds)').fill('1');
    await page.getByRole('button', { name: 'Save settings' }).click();
    await seeText(page.getByRole('status'), 'Saved');
    // The agent egress allowlist: saving applies it on the Docker host at once.
    await page.getByLabel(/^Egress allowlist/).fill(`host:${fake.port}\n10.0.0.0/8:11434`);
    await page.getByRole('button', { name: 'Save egress allowlist' }).click();
    await seeText(page.getByTestId('egress-hosts'), 'local: applied');
    await shot('fleet-settings');

    await buildVersion(h.docker, image, image, '2.0.0', 'e2e v2: better');
    await go('/admin/rollouts');
    await page.getByLabel('Image').fill(image);
    await page.getByRole('button', { name: 'Start rollout' }).click();
    await page.getByRole('heading', { name: /Rollout of/ }).waitFor();
    await seeCount(page.getByTestId('wave'), 3);
    // Live: the page moves through the waves without a reload.
    await seeText(page.getByTestId('wave').first(), /running|done/, { timeout: 60_000 });
    await seeText(page.getByTestId('rollout-status'), 'completed', { exact: true, timeout: 120_000 });
    for (const w of await page.getByTestId('wave').all()) await seeText(w, 'done');
    expect(await page.getByRole('link', { name: /in Temporal UI/ }).getAttribute('href')).toMatch(/rollout%2F/);
    await shot('rollout');
    await go('/admin/events');
    await seeText(page.locator('table'), 'rollout.completed');
    await shot('fleet-events');
  });

  it('offers a manual-mode user the update with its changelog, and "Update now" applies it', async () => {
    const admin = (await h.core.db.user.findFirst({ where: { username: ADMIN.username } }))!;
    const agent = (await h.core.agents.findOwned('user', admin.id))!;
    const { token } = await h.core.users.createToken(admin.id, 'e2e-update');
    const call = (p: string, method: string, body?: unknown) =>
      fetch(`${h.url}${p}`, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
    const ws = ((await (await call('/api/workspaces', 'GET')).json()) as { slug: string; personal: boolean }[]).find((w) => w.personal)!;
    expect((await call(`/api/workspaces/${ws.slug}/update-config`, 'PUT', { mode: 'manual', preferredHourUtc: null })).status).toBe(200);
    const v3 = await buildVersion(h.docker, image, image, '3.0.0', 'e2e v3: kinder errors');
    const started = await call('/api/admin/rollouts', 'POST', { image });
    expect(started.status).toBe(201);
    await eventually(async () => (await h.core.agents.get(agent.id)).updateAvailable, 'the offer', 60_000);
    await go('/agent');
    const box = page.getByTestId('update-available');
    await seeText(box, 'e2e v3: kinder errors');
    await shot('update-available');
    await box.getByRole('button', { name: 'Update now' }).click();
    await seeText(box, 'Updating');
    await eventually(async () => (await h.core.agents.get(agent.id)).imageDigest === v3, 'the update applied', 90_000);
    await seeText(page.getByTestId('agent-status'), 'running', { exact: true, timeout: 60_000 });
  });

  it('works at 375 px wide, and no page logged an error', async () => {
    const narrow = watch(await (await browser.newContext({ viewport: { width: 375, height: 800 } })).newPage());
    // If the sign-in page never shows, say what the page asked for and got.
    const netlog: string[] = [];
    narrow.on('request', (r) => netlog.push(`> ${r.method()} ${r.url()} ${Date.now()}`));
    narrow.on('requestfinished', (r) => netlog.push(`< ${r.url()} ${Date.now()}`));
    narrow.on('requestfailed', (r) => netlog.push(`x ${r.url()} ${r.failure()?.errorText} ${Date.now()}`));
    narrow.on('crash', () => netlog.push('CRASH'));
    narrow.on('console', (m) => netlog.push(`console ${m.type()}: ${m.text()}`));
    await (async () => {
      await narrow.goto(`${h.url}/`);
      await narrow.getByRole('heading', { name: 'Sign in to Hangar' }).waitFor();
    })().catch(async (e: unknown) => {
      console.log('[web-ui] no sign-in page at', narrow.url(), 'problems', problems);
      console.log(`[web-ui] requests:\n${netlog.join('\n')}`);
      console.log('[web-ui] page:', (await narrow.content().catch((x) => String(x))).slice(0, 4000));
      await shot('narrow-failure', narrow).catch(() => undefined);
      throw e;
    });
    await narrow.getByLabel('Username or email').fill(ADMIN.username);
    await narrow.getByLabel('Password').fill(ADMIN.password);
    await narrow.getByRole('button', { name: 'Sign in' }).click();
    await narrow.getByRole('heading', { name: 'My agent' }).waitFor();
    const overflow = await narrow.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await shot('my-agent-375px', narrow);
    // Keyboard: the nav is reachable with Tab and every input has a label.
    const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea')].filter((el) => !el.closest('label') && !el.getAttribute('aria-label')).length);
    expect(unlabelled).toBe(0);
    // The whole UI's JavaScript, as the browser loaded it, stays under 150 kB gzipped.
    const scripts = await narrow.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name).filter((n) => n.endsWith('.js')));
    expect(scripts.length).toBeGreaterThan(5);
    let gz = 0;
    for (const url of scripts) gz += gzipSync(Buffer.from(await (await fetch(url)).arrayBuffer())).length;
    console.log(`[web-ui] ${scripts.length} scripts, ${(gz / 1024).toFixed(1)} kB gzipped`);
    expect(gz).toBeLessThan(150 * 1024);
    expect(problems).toEqual([]);
  });
});
