import { expect } from 'vitest';
import { createTestUser, type Hangar, type TestUser } from './hangar.harness.ts';
import type { startFakeOpenAI } from './fake-openai.ts';

// Workspaces for tests: users with an email (invitations go to one), a
// workspace made through the API, members brought in the way people are (an
// invitation accepted), and a workspace provider pointing at the fake upstream.

export type Person = TestUser & { email: string; name: string };

export async function person(h: Hangar, name = 'Person'): Promise<Person> {
  const u = await createTestUser(h);
  const email = `${u.id.slice(0, 8)}@teams.example.test`;
  const displayName = `${name} ${u.id.slice(0, 4)}`;
  await h.core.db.user.update({ where: { id: u.id }, data: { email, displayName } });
  return { ...u, email, name: displayName };
}

export async function makeWorkspace(owner: TestUser, prefix = 'team'): Promise<{ id: string; slug: string }> {
  const slug = `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
  const res = await owner.api('/api/workspaces', { body: { slug, name: `Team ${slug}` } });
  expect(res.status, await res.clone().text()).toBe(201);
  return res.json();
}

export async function invite(by: TestUser, slug: string, email: string, role: string): Promise<{ id: string; token: string; expiresAt: string }> {
  const res = await by.api(`/api/workspaces/${slug}/invites`, { body: { email, role } });
  expect(res.status, await res.clone().text()).toBe(201);
  return res.json();
}

/** Invited by `by` and accepted by `who`: a member with `role`. */
export async function join(by: TestUser, slug: string, who: Person, role: string): Promise<void> {
  const { token } = await invite(by, slug, who.email, role);
  const res = await who.api('/api/invites/accept', { body: { token } });
  expect(res.status, await res.clone().text()).toBe(200);
}

/** A provider of the workspace pointing at the fake upstream, and the agent config using it. */
export async function workspaceProvider(owner: TestUser, slug: string, fake: Awaited<ReturnType<typeof startFakeOpenAI>>, key = 'sk-workspace-key-7777') {
  const res = await owner.api(`/api/workspaces/${slug}/providers`, {
    body: { name: 'fake', displayName: 'Fake', type: 'custom', baseUrl: fake.agentBaseUrl, apiKey: key, models: [{ id: 'fake-model' }] },
  });
  expect(res.status, await res.clone().text()).toBe(201);
  const provider = await res.json();
  const cfg = await owner.api(`/api/workspaces/${slug}/agent-config`, {
    method: 'PUT',
    body: { primaryModel: 'fake/fake-model', fallbackModels: [], personality: null, providerId: provider.id },
  });
  expect(cfg.status, await cfg.clone().text()).toBe(200);
  return provider as { id: string };
}
