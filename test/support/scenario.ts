import type { startFakeOpenAI } from './fake-openai.ts';
import type { TestUser } from './hangar.harness.ts';

/** A user with a provider pointing at the fake upstream and an agent config using it. */
export async function giveProvider(user: TestUser, fake: Awaited<ReturnType<typeof startFakeOpenAI>>, key = 'sk-test-key-1234') {
  const res = await user.api('/api/me/providers', {
    body: { name: 'fake', displayName: 'Fake', type: 'custom', baseUrl: fake.agentBaseUrl, apiKey: key, models: [{ id: 'fake-model' }] },
  });
  if (res.status !== 201) throw new Error(`provider create answered ${res.status}: ${await res.text()}`);
  const provider = await res.json();
  const cfg = await user.api('/api/me/agent-config', {
    method: 'PUT',
    body: { primaryModel: 'fake/fake-model', fallbackModels: [], personality: null, providerId: provider.id },
  });
  if (cfg.status !== 200) throw new Error(`agent config answered ${cfg.status}: ${await cfg.text()}`);
  return provider as { id: string };
}

export async function chat(user: TestUser, content: string) {
  const res = await user.api('/api/chat', { body: { messages: [{ role: 'user', content }] } });
  const body = await res.json();
  return { status: res.status, body, text: body?.choices?.[0]?.message?.content as string | undefined };
}
