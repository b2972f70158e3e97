import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentContainerName, agentWorkflowId } from '../../core/contracts/agent.contract.ts';
import { asSystem } from '../../core/db.ts';
import { buildAgentImage } from '../../core/runtime/stack.runtime.ts';
import { systemPrompt, userWords } from '../support/fake-openai.ts';
import { createTestUser, eventually, useScene, type TestUser } from '../support/hangar.harness.ts';
import { buildImageFromDockerfile, buildVersion } from '../support/test-images.ts';
import { stateQuery } from '../../core/contracts/agent.contract.ts';

// Real OpenClaw agents (docker/openclaw) behind Hangar, against the fake
// OpenAI-compatible upstream on this machine. The rest of the suite runs the
// small reference agent; this file is the proof that the real runtime works:
// OpenClaw accepts the config endpoint's openclaw.json as is, chat and
// history go through OpenClaw's own endpoints, and its sessions (on the
// agent's volume) survive stops, restarts and a failed update's rollback.
//
// The image is built here, once per run (docker/openclaw/build.sh reuses an
// image whose inputs are unchanged, and npm's cache makes a rebuild cheap).
// HANGAR_TEST_OPENCLAW_IMAGE picks another tag (e.g. while developing).

const OPENCLAW_IMAGE = process.env.HANGAR_TEST_OPENCLAW_IMAGE ?? 'hangar/openclaw:latest';
const repo = `hangar-test/openclaw-${randomUUID().slice(0, 8)}`;
const image = `${repo}:stable`;
/** Each test starts OpenClaw at least once: ~10 s on an idle 2-core machine, a minute or more on a busy one. */
const TEST_TIMEOUT_MS = 600_000;
const snapshotDir = path.join(os.tmpdir(), `hangar-openclaw-snapshots-${process.pid}`);

/** An "OpenClaw build" that writes over its state on /data, then dies before it is healthy. */
function brokenBuild(base: string) {
  const script = [
    "const fs=require('fs'),p=require('path');",
    "const walk=(d)=>{for(const e of fs.readdirSync(d,{withFileTypes:true})){const f=p.join(d,e.name);",
    "if(e.isDirectory())walk(f);else{try{fs.writeFileSync(f,'scribbled')}catch{}}}};",
    "walk('/data');",
    "console.error('openclaw 9999.1.1: state migration failed; scribbled over /data');",
    'process.exit(3);',
  ].join('');
  return `FROM ${base}\nLABEL org.opencontainers.image.version="9999.1.1-bad" dev.hangar.changelog="a broken OpenClaw build"\nENTRYPOINT ["node", "-e", ${JSON.stringify(script)}]\n`;
}

async function streamText(res: Response): Promise<{ chunks: number; text: string }> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let chunks = 0;
  let raw = '';
  for (let i = 0; i < 5000; i++) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks++;
    raw += decoder.decode(value, { stream: true });
  }
  const text = raw
    .split('\n')
    .filter((l) => l.startsWith('data: ') && !l.includes('[DONE]'))
    .map((l) => JSON.parse(l.slice(6)))
    .map((c) => {
      if (c.error) throw new Error(`stream error: ${JSON.stringify(c.error)}`);
      return c.choices?.[0]?.delta?.content ?? '';
    })
    .join('');
  return { chunks, text };
}

describe('OpenClaw agents', () => {
  const scene = useScene({
    overrides: {
      HANGAR_AGENT_RUNTIME: 'openclaw',
      HANGAR_AGENT_IMAGE: image,
      // The harness's 60 s suits the reference agent; OpenClaw's first boot on
      // a busy 2-core machine can take several times that.
      HANGAR_AGENT_START_TIMEOUT_SEC: '300',
      HANGAR_UPDATE_HEALTH_POLL_MS: '500',
      HANGAR_SNAPSHOT_DIR: snapshotDir,
    },
  });
  let alice: TestUser;
  let bob: TestUser;
  let aliceProvider: { id: string };

  const chat = async (user: TestUser, content: string, extra: Record<string, unknown> = {}) => {
    const res = await user.api('/api/chat', { body: { messages: [{ role: 'user', content }], ...extra } });
    const body = await res.json();
    return { status: res.status, body, text: body?.choices?.[0]?.message?.content as string | undefined };
  };
  const seenFor = (words: string) => scene.fake.seen.filter((s) => s.path === '/v1/chat/completions' && userWords(s.body?.messages) === words);
  const agentOf = async (user: TestUser) => (await scene.h.core.agents.findOwned('user', user.id))!;

  async function withProvider(user: TestUser, key: string, personality: string | null = null) {
    const res = await user.api('/api/me/providers', {
      body: { name: 'fake', displayName: 'Fake', type: 'custom', baseUrl: scene.fake.agentBaseUrl, apiKey: key, models: [{ id: 'fake-model' }, { id: 'fake-model-2' }] },
    });
    expect(res.status, await res.clone().text()).toBe(201);
    const provider = await res.json();
    const cfg = await user.api('/api/me/agent-config', {
      method: 'PUT',
      body: { primaryModel: 'fake/fake-model', fallbackModels: [], personality, providerId: provider.id },
    });
    expect(cfg.status).toBe(200);
    return provider as { id: string };
  }

  beforeAll(async () => {
    // Built (or found up to date) once, then tagged for this file: rollouts need a repository of their own.
    await buildAgentImage('openclaw', OPENCLAW_IMAGE, (m) => console.log(`[openclaw image] ${m}`));
    await buildVersion(scene.h.docker, OPENCLAW_IMAGE, image, '2026.9.6-test', 'OpenClaw as built');
    alice = await createTestUser(scene.h);
    bob = await createTestUser(scene.h);
    aliceProvider = await withProvider(alice, 'sk-alice-openclaw-0001', 'You are a careful assistant. PERSONA-MARK-ONE');
    await withProvider(bob, 'sk-bob-openclaw-0002');
  }, 900_000);

  afterAll(async () => {
    await rm(snapshotDir, { recursive: true, force: true });
    await scene.h?.docker.getImage(image).remove({ force: true }).catch(() => undefined);
  }, TEST_TIMEOUT_MS);

  it('starts an OpenClaw agent per user; chat plain and streamed reaches each user\'s provider with their key and model only', async () => {
    const started = await alice.api('/api/me/agent/start', { method: 'POST' });
    expect(started.status, await started.clone().text()).toBe(200);
    expect((await started.json()).status).toBe('running');
    const agent = await agentOf(alice);
    scene.agentIds.push(agent.id);

    // OpenClaw itself answers on the agent's port: its /health, and 401 without the gateway token.
    const health = await fetch(`http://127.0.0.1:${agent.gatewayPort}/health`);
    expect(health.status).toBe(200);
    const anonymous = await fetch(`http://127.0.0.1:${agent.gatewayPort}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'openclaw/default', messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(anonymous.status).toBe(401);
    const info = await scene.h.docker.getContainer(agentContainerName(agent.id)).inspect();
    expect(info.Config.User).toBe('10001:10001');
    expect(info.HostConfig.ReadonlyRootfs).toBe(true);
    expect(info.Config.Labels['dev.hangar.agent-id']).toBe(agent.id);

    const plain = await chat(alice, 'hello from alice');
    expect(plain.status, JSON.stringify(plain.body)).toBe(200);
    expect(plain.text).toBe('echo: hello from alice');
    const upstream = seenFor('hello from alice');
    expect(upstream.length).toBeGreaterThan(0);
    expect(upstream.every((s) => s.authorization === 'Bearer sk-alice-openclaw-0001')).toBe(true);
    expect(upstream[0].body?.model).toBe('fake-model');
    // The personality reached OpenClaw's system prompt through the workspace's SOUL.md.
    expect(systemPrompt(upstream[0].body)).toContain('PERSONA-MARK-ONE');

    const streamed = await alice.api('/api/chat', { body: { messages: [{ role: 'user', content: 'stream these words please' }], stream: true } });
    expect(streamed.status).toBe(200);
    expect(streamed.headers.get('content-type')).toContain('text/event-stream');
    const { chunks, text } = await streamText(streamed);
    expect(chunks).toBeGreaterThan(1);
    expect(text).toBe('echo: stream these words please');

    // Bob's agent is another OpenClaw with Bob's key; nothing of Alice's reaches it or his provider calls.
    const bobSays = await chat(bob, 'hi from bob');
    expect(bobSays.text).toBe('echo: hi from bob');
    scene.agentIds.push((await agentOf(bob)).id);
    const bobUpstream = seenFor('hi from bob');
    expect(bobUpstream.length).toBeGreaterThan(0);
    for (const s of bobUpstream) {
      expect(s.authorization).toBe('Bearer sk-bob-openclaw-0002');
      expect(JSON.stringify(s.body)).not.toContain('hello from alice');
      expect(systemPrompt(s.body)).not.toContain('PERSONA-MARK-ONE');
    }
    for (const s of scene.fake.seen.filter((x) => x.authorization === 'Bearer sk-alice-openclaw-0001')) {
      expect(JSON.stringify(s.body)).not.toContain('hi from bob');
    }

    // History comes from OpenClaw's sessions, each user's own.
    const history = await (await alice.api('/api/chat/sessions')).json();
    const def = history.sessions.find((s: { id: string }) => s.id === 'default');
    expect(def.messages.map((m: { role: string; content: string }) => `${m.role}: ${m.content}`)).toEqual([
      'user: hello from alice',
      'assistant: echo: hello from alice',
      'user: stream these words please',
      'assistant: echo: stream these words please',
    ]);
    expect(JSON.stringify(await (await bob.api('/api/chat/sessions')).json())).not.toContain('alice');
  }, TEST_TIMEOUT_MS);

  it('a config change (model, personality) restarts the agent once, and the next answer reflects it', async () => {
    const agent = await agentOf(alice);
    const handle = scene.h.temporal.workflow.getHandle(agentWorkflowId(agent.id));
    const generation = (await handle.query(stateQuery)).generation;
    const before = (await scene.h.docker.getContainer(agentContainerName(agent.id)).inspect()).State.StartedAt;
    for (const personality of ['Be brief. PERSONA-MARK-TWO', 'Speak plainly. PERSONA-MARK-THREE']) {
      const put = await alice.api('/api/me/agent-config', {
        method: 'PUT',
        body: { primaryModel: 'fake/fake-model-2', fallbackModels: ['fake/fake-model'], personality, providerId: aliceProvider.id },
      });
      expect((await put.json()).restart).toBe('scheduled');
    }
    await eventually(async () => {
      const row = await agentOf(alice);
      const info = await scene.h.docker.getContainer(agentContainerName(agent.id)).inspect();
      return row.status === 'running' && info.State.StartedAt !== before ? info : null;
    }, 'the restart after the config change', 400_000);

    expect((await chat(alice, 'after the change')).text).toBe('echo: after the change');
    const [sent] = seenFor('after the change');
    expect(sent.body?.model).toBe('fake-model-2');
    expect(systemPrompt(sent.body)).toContain('PERSONA-MARK-THREE');
    expect(systemPrompt(sent.body)).not.toContain('PERSONA-MARK-ONE');
    // OpenClaw kept the session across the restart: the earlier turns are in the context it sent.
    expect(JSON.stringify(sent.body?.messages)).toContain('hello from alice');
    // One restart for the burst of two changes: the lifecycle completed exactly one more start.
    expect((await handle.query(stateQuery)).generation).toBe(generation + 1);
  }, TEST_TIMEOUT_MS);

  it('history survives an idle stop: the next chat starts the agent and continues the session', async () => {
    const stopped = await alice.api('/api/me/agent/stop', { method: 'POST' });
    expect((await stopped.json()).status).toBe('stopped');
    const agent = await agentOf(alice);
    expect((await scene.h.docker.getContainer(agentContainerName(agent.id)).inspect()).State.Running).toBe(false);

    expect((await chat(alice, 'back again')).text).toBe('echo: back again');
    const [sent] = seenFor('back again');
    expect(JSON.stringify(sent.body?.messages)).toContain('after the change');
    const history = await (await alice.api('/api/chat/sessions')).json();
    const text = JSON.stringify(history);
    for (const said of ['hello from alice', 'after the change', 'back again']) expect(text).toContain(said);
  }, TEST_TIMEOUT_MS);

  it('a config OpenClaw refuses fails the start with agent_start_failed and the gateway\'s own words', async () => {
    const carol = await createTestUser(scene.h);
    const provider = await withProvider(carol, 'sk-carol-openclaw-0003');
    // A row no API accepts (context windows are integers there): the config endpoint passes it on, OpenClaw refuses it.
    await asSystem(scene.h.core.db, (tx) =>
      tx.llmProvider.update({ where: { id: provider.id }, data: { models: [{ id: 'fake-model', contextWindow: 'very large' }] } }),
    );
    const started = await carol.api('/api/me/agent/start', { method: 'POST' });
    scene.agentIds.push((await agentOf(carol)).id);
    const body = await started.json();
    expect(started.status, JSON.stringify(body)).toBe(503);
    expect(body.error.code).toBe('agent_start_failed');
    expect(body.error.message).toMatch(/contextWindow/);
    expect(body.error.message).toMatch(/Gateway failed to start: Invalid config/);
  }, TEST_TIMEOUT_MS);

  it('a rollout to an OpenClaw build that fails health rolls back, sessions intact', async () => {
    const admin = await createTestUser(scene.h, 'admin');
    const current = await (await admin.api('/api/admin/fleet/settings')).json();
    const put = await admin.api('/api/admin/fleet/settings', {
      method: 'PUT',
      body: { ...current, mode: 'auto', imageAllowlist: ['hangar-test/'], channels: [] },
    });
    expect(put.status, await put.clone().text()).toBe(200);
    const agent = await agentOf(alice);
    const good = (await scene.h.docker.getContainer(agentContainerName(agent.id)).inspect()).Image;
    const sessions = async () => {
      const r = await alice.api('/api/chat/sessions');
      const text = await r.text();
      expect(r.status, text).toBe(200);
      return JSON.stringify(JSON.parse(text).sessions);
    };
    const before = await sessions();

    await buildImageFromDockerfile(scene.h.docker, image, brokenBuild(image));
    const res = await admin.api('/api/admin/rollouts', {
      body: { image, agentIds: [agent.id], ignoreWindows: true, strategy: { kind: 'immediate', maxRetries: 0, healthTimeoutSeconds: 300 } },
    });
    expect(res.status, await res.clone().text()).toBe(201);
    const { id } = await res.json();
    const done = await eventually(async () => {
      const r = await (await admin.api(`/api/admin/rollouts/${id}`)).json();
      return ['completed', 'aborted', 'failed'].includes(r.status) ? r : null;
    }, 'the rollout to finish', 600_000);
    const mine = done.agents.find((a: { agentId: string }) => a.agentId === agent.id);
    expect(mine.status).toBe('rolled_back');
    expect(mine.error).toMatch(/scribbled over \/data/);

    expect((await scene.h.docker.getContainer(agentContainerName(agent.id)).inspect()).Image).toBe(good);
    expect((await agentOf(alice)).status).toBe('running');
    // OpenClaw's sessions came back from the snapshot, and the conversation goes on.
    expect(await sessions()).toBe(before);
    expect((await chat(alice, 'after the rollback')).text).toBe('echo: after the rollback');
    expect(JSON.stringify(seenFor('after the rollback')[0].body?.messages)).toContain('back again');
  }, TEST_TIMEOUT_MS);

});

