import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import type Docker from 'dockerode';
import type { startFakeOpenAI } from './fake-openai.ts';
import type { Scene } from './hangar.harness.ts';
import { createTestUser, type TestUser } from './hangar.runtime.ts';

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

/** A new user with a provider and a running agent; the agent is the scene's to clean up. */
export async function startedAgent(scene: Scene): Promise<{ user: TestUser; agentId: string }> {
  const user = await createTestUser(scene.h);
  await giveProvider(user, scene.fake);
  const res = await user.api('/api/me/agent/start', { method: 'POST' });
  if (res.status !== 200) throw new Error(`agent start answered ${res.status}: ${await res.text()}`);
  const { id } = await res.json();
  scene.agentIds.push(id);
  return { user, agentId: id };
}

/** Runs a command in a running container as its own user; resolves with the exit code and what it printed (stdout and stderr). */
export async function execWithOutput(c: Docker.Container, cmd: string[]): Promise<{ code: number; output: string }> {
  const e = await c.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await e.start({ hijack: true, stdin: false });
  let output = '';
  const sink = new Writable({ write: (chunk: Buffer, _enc, cb) => ((output += chunk.toString()), cb()) });
  c.modem.demuxStream(stream, sink, sink);
  await new Promise((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.on('error', reject);
  });
  for (let i = 0; i < 50; i++) {
    const info = await e.inspect();
    if (!info.Running) return { code: info.ExitCode ?? -1, output };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('exec did not finish');
}

/** Runs a command in a running container as its own user; resolves with the exit code. */
export async function execIn(c: Docker.Container, cmd: string[]): Promise<number> {
  return (await execWithOutput(c, cmd)).code;
}

/** Every regular file under `dir`, as paths relative to it, sorted (a refused or cancelled snapshot leaves none). */
export async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name))).sort();
}
