import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, seeText } from '../support/browser.ts';
import { eventually, useScene } from '../support/hangar.harness.ts';
import { startSmtpSink } from '../support/smtp-sink.ts';
import { person, type Person } from '../support/teams.ts';

// Teams in a real browser against the real stack: an owner makes a workspace,
// gives it a provider and invites someone by mail; the invitee signs in, sees
// the invitation, accepts it from the mail's link, starts the shared agent
// and chats with it; the owner sees the member provisioned into the agent.

const SHOTS = path.resolve('test-artifacts/screenshots');
const PASSWORD = 'correct horse battery';
const smtp = await startSmtpSink();

describe('teams in the web UI', () => {
  const scene = useScene({ overrides: { SMTP_URL: smtp.url } });
  let browser: Browser;
  let owner: Person;
  let member: Person;
  let ownerPage: Page;
  let memberPage: Page;
  const slug = `e2e-${Math.random().toString(36).slice(2, 8)}`;
  const problems: string[] = [];

  async function signedIn(who: Person): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()} (${page.url()})`);
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message} (${page.url()})`));
    page.on('dialog', (d) => void d.accept());
    await page.goto(`${scene.h.url}/#/agent`);
    await page.getByLabel('Username or email').fill(who.email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'My agent' }).waitFor();
    return page;
  }
  const go = async (page: Page, hash: string) => {
    await page.goto(`${scene.h.url}/#${hash}`);
    await page.waitForLoadState('networkidle').catch(() => undefined);
  };
  const shot = (page: Page, name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

  beforeAll(async () => {
    await mkdir(SHOTS, { recursive: true });
    browser = await launchBrowser();
    [owner, member] = await Promise.all([person(scene.h, 'Olga'), person(scene.h, 'Milo')]);
  });
  afterAll(async () => {
    await browser?.close();
    await smtp.close();
  });

  it('an owner makes a workspace, gives its agent a provider and invites someone by mail', async () => {
    ownerPage = await signedIn(owner);
    await go(ownerPage, '/workspaces');
    await ownerPage.getByLabel('Name', { exact: true }).fill('E2E Team');
    await ownerPage.getByLabel(/^Slug/).fill(slug);
    await ownerPage.getByRole('button', { name: 'Create workspace' }).click();
    await ownerPage.getByRole('heading', { name: /E2E Team/ }).waitFor();
    // The switcher knows it now.
    await eventually(async () => (await ownerPage.getByLabel('Workspace', { exact: true }).locator('option').allTextContents()).includes('E2E Team'), 'the switcher to list the workspace', 15_000);

    await ownerPage.getByRole('link', { name: 'Settings' }).last().click();
    await ownerPage.getByLabel(/^Name \(lowercase/).fill('fake');
    await ownerPage.getByLabel('Type').selectOption('custom');
    await ownerPage.getByLabel('Base URL').fill(scene.fake.agentBaseUrl);
    await ownerPage.getByLabel('API key').fill('sk-e2e-team-key-4321');
    await ownerPage.getByLabel(/^Models/).fill('fake-model');
    await ownerPage.getByRole('button', { name: 'Add provider' }).click();
    await ownerPage.locator('li[data-provider="fake"]').waitFor();
    await ownerPage.getByLabel('Workspace agent provider').selectOption({ label: 'fake (fake)' });
    await ownerPage.getByLabel(/^Primary model/).fill('fake/fake-model');
    await ownerPage.getByRole('button', { name: 'Save agent config' }).click();
    await seeText(ownerPage.getByTestId('workspace-config-result'), 'Saved');
    expect(await ownerPage.content()).not.toContain('sk-e2e-team-key-4321');
    await shot(ownerPage, 'workspace-settings');

    await ownerPage.getByRole('link', { name: 'Members' }).last().click();
    await ownerPage.getByLabel('Email').fill(member.email);
    await ownerPage.locator('select[name="inviteRole"]').selectOption('member');
    await ownerPage.getByRole('button', { name: 'Send invitation' }).click();
    await seeText(ownerPage.getByTestId('invite-sent'), 'Mailed.');
    await shot(ownerPage, 'workspace-members-invited');
  });

  it('the invitee sees the invitation, accepts it from the mail and chats with the shared agent', async () => {
    memberPage = await signedIn(member);
    await go(memberPage, '/workspaces');
    await seeText(memberPage.getByTestId('pending-invites'), 'E2E Team');
    await shot(memberPage, 'workspaces-pending-invite');

    const mail = await eventually(async () => smtp.to(member.email).at(-1), 'the invitation mail', 15_000);
    const link = /(http\S+#\/invite\/[A-Za-z0-9_-]+)/.exec(mail.text)?.[1];
    expect(link).toBeDefined();
    await memberPage.goto(link!.replace(/^https?:\/\/[^/]+/, scene.h.url));
    await memberPage.getByRole('button', { name: 'Accept invitation' }).click();
    await seeText(memberPage.getByRole('status'), 'You joined');
    await memberPage.getByRole('link', { name: 'Open it' }).click();
    await memberPage.getByRole('heading', { name: /E2E Team/ }).waitFor();

    await memberPage.getByRole('button', { name: 'Start', exact: true }).click();
    await seeText(memberPage.getByTestId('workspace-agent-status'), 'running', { exact: true, timeout: 90_000 });
    const agent = (await scene.h.core.workspaceAgents.agentOf(member.id, slug)).agent!;
    scene.agentIds.push(agent.id);

    await memberPage.getByLabel('Message').fill('hello team agent');
    await memberPage.getByRole('button', { name: 'Send' }).click();
    await seeText(memberPage.locator('.msg.assistant').last(), 'echo: hello team agent', { exact: true, timeout: 60_000 });
    await seeText(memberPage.getByRole('button', { name: /Send|Answering/ }), 'Send', { exact: true, timeout: 30_000 });
    await shot(memberPage, 'workspace-agent-chat');
  });

  it('the owner sees the new member provisioned into the agent', async () => {
    // The owner's page still shows the members page of before the invitation
    // (same hash: going there again would not reload it), so they come back to it.
    await go(ownerPage, '/workspaces');
    // The members page follows the provisioning by itself while a member is still pending.
    await go(ownerPage, `/w/${slug}/members`);
    await seeText(ownerPage.locator(`tr[data-member="${member.email}"] td`).nth(4), 'ok', { exact: true, timeout: 60_000 });
    await go(ownerPage, `/w/${slug}`);
    await seeText(ownerPage.getByTestId('member-provisioning'), '2 of 2 members provisioned');
    await shot(ownerPage, 'workspace-agent-owner');
    expect(problems).toEqual([]);
  });
});
