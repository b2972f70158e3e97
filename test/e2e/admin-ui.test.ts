import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asSystem } from '../../core/db.ts';
import { eventually, freshDatabase, removeAgentsFromDocker, startHangar, type Hangar } from '../support/hangar.harness.ts';
import { startOidcProvider } from '../support/oidc-provider.ts';
import { startSmtpSink } from '../support/smtp-sink.ts';
import { launchBrowser, seeText } from '../support/browser.ts';

// The administration pages in a real browser (Chromium via playwright-core)
// against Hangar on the real database, a real OpenID provider and a real SMTP
// server on loopback: sign-in settings, password change, reset links,
// suspend/reactivate with a user's detail and tokens, and the audit log.
// A worker runs for the system agents (they start at once, always on).

const SHOTS = path.resolve('test-artifacts/screenshots');
const ADMIN = { username: 'admin-ui-root', password: 'admin ui password 1' };
const MEMBER = { username: 'admin-ui-member', email: 'member-ui@example.test', password: 'member ui password 1' };

describe('administration pages', () => {
  let h: Hangar;
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let idp: Awaited<ReturnType<typeof startOidcProvider>>;
  let smtp: Awaited<ReturnType<typeof startSmtpSink>>;
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];
  let memberId: string;
  let adminId: string;
  const agentIds: string[] = [];

  function watch(p: Page) {
    p.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()} (${p.url()})`);
    });
    p.on('pageerror', (e) => problems.push(`pageerror: ${e.message} (${p.url()})`));
    p.on('dialog', (d) => void d.accept());
    return p;
  }
  const shot = (name: string, p = page) => p.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  const go = async (hash: string, p = page) => {
    await p.goto(`${h.url}/#${hash}`);
    await p.waitForLoadState('networkidle').catch(() => undefined);
  };
  async function signIn(p: Page, who: { username: string; password: string }) {
    await p.goto(`${h.url}/`);
    await p.getByRole('heading', { name: 'Sign in to Hangar' }).waitFor();
    await p.getByLabel('Username or email').fill(who.username);
    await p.getByLabel('Password').fill(who.password);
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.getByRole('heading', { name: 'My agent' }).waitFor();
  }
  /** Requests the page made that the test provoked (a wrong password's 401): Chromium logs them itself. */
  const provoked = (before: number, status: string) => {
    const extra = problems.splice(before);
    expect(extra.every((p) => p.includes(status)), extra.join('\n')).toBe(true);
  };

  beforeAll(async () => {
    await mkdir(SHOTS, { recursive: true });
    smtp = await startSmtpSink();
    db = await freshDatabase();
    h = await startHangar({ DATABASE_URL: db.url, SMTP_URL: smtp.url });
    idp = await startOidcProvider({ redirectUri: `${h.url}/api/auth/oidc/callback` });
    adminId = (await h.core.users.create({ username: ADMIN.username, displayName: 'Root Admin', role: 'admin', password: ADMIN.password })).id;
    memberId = (await h.core.users.create({ username: MEMBER.username, email: MEMBER.email, displayName: 'Member Person', password: MEMBER.password })).id;
    browser = await launchBrowser();
    page = watch(await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage());
    await signIn(page, ADMIN);
  });
  afterAll(async () => {
    await browser?.close();
    if (h) await removeAgentsFromDocker(h.docker, agentIds);
    await h?.stop();
    await idp?.close();
    await smtp?.close();
    await db?.drop();
  });

  it('sets, tests and removes OIDC on the sign-in settings page, applied without a restart', async () => {
    await go('/admin/sign-in');
    const oidc = page.getByRole('form', { name: 'Single sign-on (OIDC)' });
    await seeText(oidc.getByTestId('oidc-state'), 'Not configured.');
    await oidc.getByLabel('Issuer URL').fill(idp.issuer);
    await oidc.getByLabel('Client ID').fill('hangar');
    await oidc.getByLabel('Client secret').fill('not-the-secret');
    await oidc.getByRole('button', { name: 'Test' }).click();
    await seeText(oidc.getByTestId('test-result'), /Test failed.*client/s);
    await oidc.getByLabel('Client secret').fill('hangar-client-secret');
    await oidc.getByRole('button', { name: 'Test' }).click();
    await seeText(oidc.getByTestId('test-result'), 'Test passed');
    await oidc.getByRole('button', { name: 'Save' }).click();
    await seeText(page.getByRole('form', { name: 'Single sign-on (OIDC)' }).getByTestId('oidc-state'), 'Configured (secret stored).');
    expect(await h.core.settings.oidc()).toMatchObject({ issuer: idp.issuer, clientId: 'hangar', clientSecret: 'hangar-client-secret' });
    await shot('admin-sign-in');
    // The sign-in page offers it at once.
    const other = watch(await (await browser.newContext()).newPage());
    await other.goto(`${h.url}/`);
    await other.getByRole('button', { name: 'Sign in with SSO' }).waitFor();
    await other.context().close();

    await page.getByRole('form', { name: 'Single sign-on (OIDC)' }).getByRole('button', { name: 'Remove' }).click();
    await seeText(page.getByRole('form', { name: 'Single sign-on (OIDC)' }).getByTestId('oidc-state'), 'Not configured.');
    expect(await h.core.settings.oidc()).toBeNull();
    expect(await asSystem(h.core.db, (tx) => tx.auditLog.count({ where: { action: { in: ['auth.oidc.save', 'auth.oidc.remove'] } } }))).toBe(2);
  });

  it('a member changes their password: the wrong current one is refused, their other sessions end', async () => {
    const member = watch(await (await browser.newContext()).newPage());
    await signIn(member, MEMBER);
    const elsewhere = await h.core.users.createSession(memberId);
    await go('/settings', member);
    const form = member.getByRole('form', { name: 'Change password' });
    await form.getByLabel('Current password').fill('not my password at all');
    await form.getByLabel('New password (at least 12 characters)').fill('member changed password');
    await form.getByLabel('New password again').fill('member changed password');
    const before = problems.length;
    await form.getByRole('button', { name: 'Change password' }).click();
    await seeText(form.getByRole('alert'), /current password is wrong/);
    provoked(before, '401');
    await form.getByLabel('Current password').fill(MEMBER.password);
    await form.getByRole('button', { name: 'Change password' }).click();
    await seeText(form.getByRole('status'), 'Password changed');
    await shot('password-change', member);
    expect(await h.core.users.resolveSession(elsewhere.token)).toBeNull();
    expect((await h.core.users.authenticate(MEMBER.username, 'member changed password')).id).toBe(memberId);
    MEMBER.password = 'member changed password';
    // This browser's session goes on.
    await go('/agent', member);
    await member.getByRole('heading', { name: 'My agent' }).waitFor();
    await member.context().close();
  });

  it('an admin mails a reset link; the link sets a new password once', async () => {
    await go('/admin/users');
    const row = page.locator(`tr[data-user="${MEMBER.email}"]`);
    await row.getByRole('button', { name: 'Send Member Person a password reset link' }).click();
    await seeText(page.getByRole('status'), `Reset link sent to ${MEMBER.email}`);
    let text = '';
    for (let i = 0; i < 100 && !text; i++) {
      text = smtp.to(MEMBER.email).at(-1)?.text ?? '';
      if (!text) await new Promise((r) => setTimeout(r, 100));
    }
    const link = /(http:\/\/\S+#\/reset-password\/[A-Za-z0-9_-]+)/.exec(text)?.[1];
    expect(link, text).toBeTruthy();

    const visitor = watch(await (await browser.newContext()).newPage());
    await visitor.goto(link!);
    await visitor.getByRole('heading', { name: 'Choose a new password' }).waitFor();
    await visitor.getByLabel('New password (at least 12 characters)').fill('set through the link');
    await visitor.getByLabel('New password again').fill('set through the link');
    await visitor.getByRole('button', { name: 'Set password' }).click();
    await seeText(visitor.getByRole('status'), 'Password set');
    await shot('reset-password', visitor);
    expect((await h.core.users.authenticate(MEMBER.username, 'set through the link')).id).toBe(memberId);
    MEMBER.password = 'set through the link';
    await visitor.getByRole('button', { name: 'Go to sign-in' }).click();
    await visitor.getByRole('heading', { name: 'Sign in to Hangar' }).waitFor();
    expect(new URL(visitor.url()).hash).not.toContain('reset-password');
    // Spent: the same link again (opened from the mail: a fresh page) is refused.
    await visitor.close();
    const again = watch(await visitor.context().newPage());
    await again.goto(link!);
    await again.getByRole('heading', { name: 'Choose a new password' }).waitFor();
    await again.getByLabel('New password (at least 12 characters)').fill('another try at it');
    await again.getByLabel('New password again').fill('another try at it');
    const before = problems.length;
    await again.getByRole('button', { name: 'Set password' }).click();
    await seeText(again.getByRole('alert'), /wrong, used or expired/);
    provoked(before, '401');
    await again.context().close();
  });

  it('suspends and reactivates a user; the detail issues a scoped token that works for them', async () => {
    await go('/admin/users');
    const row = page.locator(`tr[data-user="${MEMBER.email}"]`);
    expect(await page.locator(`tr[data-user="${ADMIN.username}"]`).getByRole('button', { name: 'Suspend Root Admin' }).isDisabled()).toBe(true);
    await row.getByRole('button', { name: 'Suspend Member Person' }).click();
    await seeText(row, 'suspended');
    expect((await h.core.users.get(memberId)).status).toBe('suspended');
    await shot('admin-users-suspended');
    await row.getByRole('button', { name: 'Reactivate Member Person' }).click();
    await row.getByRole('button', { name: 'Suspend Member Person' }).waitFor();
    expect((await h.core.users.get(memberId)).status).toBe('active');

    await row.getByRole('button', { name: 'Details of Member Person' }).click();
    const detail = page.getByRole('region', { name: 'User Member Person' });
    await detail.getByRole('heading', { name: 'Member Person' }).waitFor();
    await detail.getByLabel('Token name').fill('ui-issued');
    await detail.getByLabel('agent').check();
    await detail.getByRole('button', { name: 'Issue token' }).click();
    const token = await seeText(detail.getByTestId('issued-token'), /^hgr_/);
    const me = await (await fetch(`${h.url}/api/auth/me`, { headers: { authorization: `Bearer ${token}` } })).json();
    expect(me.user.id).toBe(memberId);
    expect((await fetch(`${h.url}/api/me/providers`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(403);
    await seeText(detail.getByRole('table', { name: 'Tokens' }), 'ui-issued');
    await seeText(detail, 'token.issue');
    await shot('admin-user-detail');
    await detail.getByRole('button', { name: 'Revoke token ui-issued' }).click();
    await seeText(detail.getByRole('table', { name: 'Tokens' }), 'revoked');
    expect((await fetch(`${h.url}/api/auth/me`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
  });

  it('creates a system agent that comes up on its own, and removes it', async () => {
    // The agent only needs a provider to be configured; nothing here chats.
    const provider = await h.core.providers.create(adminId, { name: 'ops', displayName: 'Ops', type: 'custom', baseUrl: 'http://127.0.0.1:9/v1', apiKey: 'sk-unused-1234', models: [{ id: 'm' }] });
    await go('/admin/system-agents');
    await seeText(page.locator('main'), 'No system agents.');
    const form = page.getByRole('form', { name: 'New system agent' });
    await form.getByLabel(/^Name/).fill('fleet-watch');
    await form.getByLabel(/^Role/).fill('You watch the fleet.');
    await form.getByLabel('Provider').selectOption({ label: 'Ops (ops)' });
    await form.getByLabel('Primary model').fill('ops/m');
    await form.getByRole('button', { name: 'Create system agent' }).click();
    const row = page.locator('tr[data-system-agent="fleet-watch"]');
    await row.waitFor();
    const [agent] = await h.core.agents.listSystemAgents();
    agentIds.push(agent.id);
    expect(await h.core.agentConfigs.get('system', 'fleet-watch')).toMatchObject({ providerId: provider.id, primaryModel: 'ops/m', personality: 'You watch the fleet.' });
    await eventually(async () => (await h.core.agents.get(agent.id)).status === 'running', 'the system agent running', 120_000);
    await page.getByRole('button', { name: 'Refresh' }).click();
    await seeText(row, 'running');
    await shot('admin-system-agents');
    await row.getByRole('button', { name: 'Remove fleet-watch' }).click();
    await seeText(page.locator('main'), 'No system agents.', { timeout: 60_000 });
    expect(await h.core.agents.listSystemAgents()).toEqual([]);
  });

  it('the audit log page filters, pages and exports what happened above', async () => {
    await go('/admin/audit');
    const table = page.getByRole('table', { name: 'Audit entries' });
    await table.waitFor();
    await page.getByLabel('Action (or prefix, e.g. user.)').fill('user.');
    await page.getByRole('button', { name: 'Filter' }).click();
    await seeText(table.locator('tbody tr').first(), 'user.reactivate');
    const actions = await table.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-action')));
    expect(actions.length).toBeGreaterThanOrEqual(4);
    expect(actions.every((a) => a?.startsWith('user.'))).toBe(true);
    expect(actions).toEqual(expect.arrayContaining(['user.suspend', 'user.reactivate', 'user.password_reset_sent', 'user.password_change']));
    await seeText(table, 'Root Admin');
    await shot('admin-audit');
    const href = await page.getByTestId('audit-csv').getAttribute('href');
    expect(href).toBe('/api/admin/audit.csv?action=user.');
    const csv = await page.request.get(`${h.url}${href}`);
    expect(csv.status()).toBe(200);
    expect(csv.headers()['content-type']).toMatch(/^text\/csv/);
    const lines = (await csv.text()).trim().split('\r\n');
    expect(lines.length).toBe(actions.length + 1);
    expect(problems).toEqual([]);
  });
});
