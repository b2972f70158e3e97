import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { agentContainerName } from '../../core/contracts/agent.contract.ts';
import { createTestUser, eventually, spawnWorker, useScene, type TestUser } from '../support/hangar.harness.ts';
import { chat, giveProvider } from '../support/scenario.ts';
import { startSmtpSink } from '../support/smtp-sink.ts';
import { buildScribbler, buildVersion, volumeFingerprint } from '../support/test-images.ts';

// Fleet updates on real Docker and Temporal, with a real SMTP server: waves,
// data kept, rollback of image AND data, a worker killed mid-wave, manual
// mode, pause/resume, and the allowlist. One fleet of 10 agents moves through
// the file's rollouts in order.

const repo = `hangar-test/rollout-${randomUUID().slice(0, 8)}`;
const image = `${repo}:stable`;
const N = 10;

const smtp = await startSmtpSink();
const snapshotDir = await mkdtemp(path.join(os.tmpdir(), 'hangar-snapshots-'));

describe('fleet rollouts', () => {
  const scene = useScene({
    overrides: {
      HANGAR_AGENT_IMAGE: image,
      HANGAR_UPDATE_HEALTH_POLL_MS: '200',
      SMTP_URL: smtp.url,
      HANGAR_SNAPSHOT_DIR: snapshotDir,
    },
  });
  const users: (TestUser & { email: string; agentId: string })[] = [];
  let admin: TestUser & { email: string };
  const digests: Record<string, string> = {};

  async function userWithEmail(role: 'admin' | 'member') {
    const u = await createTestUser(scene.h, role);
    const email = `${u.id.slice(0, 8)}@example.test`;
    await scene.h.core.db.user.update({ where: { id: u.id }, data: { email } });
    return { ...u, email };
  }

  async function settings(patch: Record<string, unknown>, strategy: Record<string, unknown> = {}) {
    const current = await (await admin.api('/api/admin/fleet/settings')).json();
    const res = await admin.api('/api/admin/fleet/settings', {
      method: 'PUT',
      body: { ...current, imageAllowlist: ['hangar-test/'], channels: [], ...patch, strategy: { ...current.strategy, ...strategy } },
    });
    expect(res.status, await res.clone().text()).toBe(200);
  }

  async function startRollout(body: Record<string, unknown>) {
    const res = await admin.api('/api/admin/rollouts', { body: { image, ...body } });
    expect(res.status, await res.clone().text()).toBe(201);
    return (await res.json()) as { id: string; workflowId: string };
  }

  const rolloutView = async (id: string) => (await admin.api(`/api/admin/rollouts/${id}`)).json();
  const finished = (id: string, timeoutMs = 150_000) =>
    eventually(async () => {
      const r = await rolloutView(id);
      return ['completed', 'aborted', 'failed'].includes(r.status) ? r : null;
    }, `rollout ${id} to finish`, timeoutMs);
  const containerImage = async (agentId: string) => (await scene.h.docker.getContainer(agentContainerName(agentId)).inspect()).Image;
  const fingerprints = async () => Object.fromEntries(await Promise.all(users.map(async (u) => [u.agentId, await volumeFingerprint(scene.h.docker, agentContainerName(u.agentId))] as const)));

  beforeAll(async () => {
    const base = inject('stack').agentImage;
    digests.v1 = await buildVersion(scene.h.docker, base, image, '1.0.0', 'v1: the first');
    admin = await userWithEmail('admin');
    for (let i = 0; i < N; i++) {
      const u = await userWithEmail('member');
      await giveProvider(u, scene.fake);
      // Chat writes the history file: every volume holds data of its own.
      expect((await chat(u, `hello from ${i}`)).text).toBe(`echo: hello from ${i}`);
      const agent = (await scene.h.core.agents.findOwned('user', u.id))!;
      scene.agentIds.push(agent.id);
      users.push({ ...u, agentId: agent.id });
    }
    await settings({ mode: 'auto' }, { kind: 'rollingWave', batchPercent: 30, pauseSeconds: 2, failureThreshold: 1, maxRetries: 0, healthTimeoutSeconds: 30 });
  });

  afterAll(async () => {
    await smtp.close();
    await rm(snapshotDir, { recursive: true, force: true });
    for (const tag of ['stable']) await scene.h?.docker.getImage(`${repo}:${tag}`).remove({ force: true }).catch(() => undefined);
  });

  it('refuses an image outside the allowlist with 400 and starts nothing', async () => {
    const before = await scene.h.core.db.rollout.count();
    for (const bad of ['evil/agent:latest', 'docker.io/hangar-test/x:1']) {
      const res = await admin.api('/api/admin/rollouts', { body: { image: bad } });
      expect(res.status).toBe(400);
      expect((await res.json()).error.code).toBe('image_not_allowed');
    }
    const invalid = [
      { image: 'Hangar Test' },
      { image, strategy: { batchPercent: 0 } },
      { image, strategy: { kind: 'yolo' } },
      { image, agentIds: [] },
      { image, surprise: true },
    ];
    for (const body of invalid) expect((await admin.api('/api/admin/rollouts', { body })).status).toBe(400);
    expect((await users[0].api('/api/admin/rollouts', { body: { image } })).status).toBe(403);
    expect(await scene.h.core.db.rollout.count()).toBe(before);
    for await (const wf of scene.h.temporal.workflow.list({ query: `WorkflowType = 'rollout'` })) {
      expect(wf.workflowId).not.toMatch(/evil|docker\.io/);
    }
  });

  it('rolls v2 across 10 agents in waves of 30%, in order with pauses, data intact', async () => {
    const before = await fingerprints();
    digests.v2 = await buildVersion(scene.h.docker, image, image, '2.0.0', 'v2: faster replies');
    const { id } = await startRollout({});
    const r = await finished(id);
    expect(r.status).toBe('completed');
    expect(r.toDigest).toBe(digests.v2);
    expect(r.waves.map((w: { agentIds: string[] }) => w.agentIds.length)).toEqual([3, 3, 3, 1]);
    for (let i = 1; i < r.waves.length; i++) {
      // In order: each wave starts after the one before finished (the pause's length is the workflow tier's to prove).
      expect(Date.parse(r.waves[i].startedAt)).toBeGreaterThan(Date.parse(r.waves[i - 1].finishedAt));
    }
    expect(r.counts.updated).toBe(N);
    for (const u of users) {
      expect(await containerImage(u.agentId)).toBe(digests.v2);
      const row = await scene.h.core.agents.get(u.agentId);
      expect([row.status, row.imageDigest]).toEqual(['running', digests.v2]);
    }
    expect(await fingerprints()).toEqual(before);
    expect((await chat(users[0], 'still there?')).text).toBe('echo: still there?');
    // Auto mode: one "updated" mail per owner, carrying the changelog.
    for (const u of users) {
      const mine = smtp.to(u.email);
      expect(mine).toHaveLength(1);
      expect(mine[0].subject).toContain('updated');
      expect(mine[0].text).toContain('v2: faster replies');
    }
    const events = await (await admin.api(`/api/admin/fleet/events?rolloutId=${id}&limit=200`)).json();
    const types = events.data.map((e: { type: string }) => e.type);
    expect(types.filter((t: string) => t === 'agent.updated')).toHaveLength(N);
    expect(types).toContain('rollout.completed');
    expect(await readdir(snapshotDir).then((ds) => Promise.all(ds.map((d) => readdir(path.join(snapshotDir, d))))).then((f) => f.flat())).toEqual([]);
  });

  it('v3 breaks /data and its health: wave 1 is rolled back with data byte-identical, the rollout aborts, the rest untouched', async () => {
    const before = await fingerprints();
    const startedAt = Object.fromEntries(await Promise.all(users.map(async (u) => [u.agentId, (await scene.h.docker.getContainer(agentContainerName(u.agentId)).inspect()).State.StartedAt] as const)));
    digests.v3 = await buildScribbler(scene.h.docker, image, image);
    const { id } = await startRollout({});
    const r = await finished(id);
    expect(r.status).toBe('aborted');
    expect(r.reason).toMatch(/failure threshold/);
    const first = new Set<string>(r.waves[0].agentIds);
    expect(first.size).toBe(3);
    for (const a of r.agents) {
      expect(a.status).toBe(first.has(a.agentId) ? 'rolled_back' : 'skipped');
      if (first.has(a.agentId)) expect(a.error).toMatch(/scribbled over \/data/);
    }
    for (const u of users) {
      expect(await containerImage(u.agentId)).toBe(digests.v2);
      expect((await scene.h.core.agents.get(u.agentId)).status).toBe('running');
      if (!first.has(u.agentId)) {
        // Never touched: the very same container, never restarted.
        expect((await scene.h.docker.getContainer(agentContainerName(u.agentId)).inspect()).State.StartedAt).toBe(startedAt[u.agentId]);
      }
    }
    expect(await fingerprints()).toEqual(before);
    const events = await (await admin.api(`/api/admin/fleet/events?rolloutId=${id}&limit=200`)).json();
    const types = events.data.map((e: { type: string }) => e.type);
    expect(types.filter((t: string) => t === 'agent.rolled_back')).toHaveLength(3);
    expect(types).toContain('rollout.aborted');
    // The mail follows the record: wait for it, then make sure it came once.
    await eventually(async () => smtp.to(admin.email).length > 0, 'the admin mail', 30_000);
    const alert = smtp.to(admin.email).filter((m) => m.subject.includes('aborted'));
    expect(alert).toHaveLength(1);
    expect(alert[0].text).toMatch(/rolled_back/);
  });

  it('a worker SIGKILLed in the middle of a wave: the rollout finishes, no agent stopped or half-updated', async () => {
    await settings({}, { batchPercent: 50, pauseSeconds: 1 });
    const before = await fingerprints();
    digests.v4 = await buildVersion(scene.h.docker, digests.v2, image, '4.0.0', 'v4: sturdier');
    const { id } = await startRollout({});
    await eventually(async () => (await rolloutView(id)).agents.some((a: { status: string }) => a.status === 'updating'), 'an agent mid-update', 60_000);
    await scene.h.worker.kill();
    await new Promise((r) => setTimeout(r, 500));
    scene.h.worker = await spawnWorker(scene.h.env);
    const r = await finished(id, 170_000);
    expect(r.status).toBe('completed');
    expect(r.counts.updated).toBe(N);
    for (const u of users) {
      expect(await containerImage(u.agentId)).toBe(digests.v4);
      expect((await scene.h.core.agents.get(u.agentId)).status).toBe('running');
      const all = await scene.h.docker.listContainers({ all: true, filters: { label: [`dev.hangar.agent-id=${u.agentId}`] } });
      expect(all.map((c) => c.State)).toEqual(['running']);
    }
    expect(await fingerprints()).toEqual(before);
  });

  it('manual mode is offered, not applied; paused mode holds at the wave boundary and resume continues', async () => {
    const manualUser = users[9];
    const workspaces = await (await manualUser.api('/api/workspaces')).json();
    const personal = workspaces.find((w: { personal: boolean }) => w.personal);
    expect((await manualUser.api(`/api/workspaces/${personal.slug}/update-config`, { method: 'PUT', body: { mode: 'manual', preferredHourUtc: null } })).status).toBe(200);
    expect((await users[0].api(`/api/workspaces/${personal.slug}/update-config`)).status).toBe(404);
    const manualContainer = (await scene.h.docker.getContainer(agentContainerName(manualUser.agentId)).inspect()).Id;
    await settings({}, { batchPercent: 50, pauseSeconds: 0 });

    digests.v5 = await buildVersion(scene.h.docker, digests.v4, image, '5.0.0', 'v5: manual test');
    const { id } = await startRollout({});
    await eventually(async () => (await rolloutView(id)).waves[0]?.status === 'running', 'wave 0 running', 60_000);
    await settings({ mode: 'paused' });
    const held = await eventually(async () => {
      const r = await rolloutView(id);
      return r.status === 'paused' ? r : null;
    }, 'the rollout to pause', 90_000);
    expect(held.waves[0].status).toBe('done');
    expect(held.waves[1].status).toBe('pending');
    expect((await admin.api(`/api/admin/rollouts/${id}/resume`, { method: 'POST' })).status).toBe(409);
    const metrics = await (await admin.api('/metrics')).text();
    expect(metrics).toMatch(new RegExp(`hangar_rollout_agents\\{rollout="${id}",image="[^"]+",status="updated"\\} ${held.waves[0].agentIds.length}`));
    expect(metrics).toMatch(/hangar_rollouts\{status="paused"\} 1/);
    for (const a of held.waves[1].agentIds) expect(await containerImage(a)).toBe(digests.v4);
    await settings({ mode: 'auto' });
    const r = await finished(id);
    expect(r.status).toBe('completed');
    expect(r.agents.find((a: { agentId: string }) => a.agentId === manualUser.agentId).status).toBe('update_available');
    expect(r.counts.updated).toBe(N - 1);

    // Untouched, told once, with the changelog.
    expect((await scene.h.docker.getContainer(agentContainerName(manualUser.agentId)).inspect()).Id).toBe(manualContainer);
    const offer = await (await manualUser.api('/api/me/agent/update')).json();
    expect(offer).toMatchObject({ available: true, toDigest: digests.v5, changelog: 'v5: manual test' });
    const mails = smtp.to(manualUser.email).filter((m) => m.subject.includes('available'));
    expect(mails).toHaveLength(1);

    const now = await manualUser.api('/api/me/agent/update', { method: 'POST' });
    expect(now.status).toBe(202);
    const { rolloutId } = await now.json();
    expect((await finished(rolloutId)).status).toBe('completed');
    expect(await containerImage(manualUser.agentId)).toBe(digests.v5);
    expect(await (await manualUser.api('/api/me/agent/update')).json()).toMatchObject({ available: false });
    expect((await manualUser.api('/api/me/agent/update', { method: 'POST' })).status).toBe(409);
  });

  it('the image poller starts rollout/<image>@<digest> for a new digest, and a second poll is a no-op', async () => {
    await settings({ channels: [{ image, pollIntervalSeconds: 3600 }] }, { kind: 'immediate' });
    const schedule = await scene.h.temporal.schedule.getHandle(`image-poller/${image}`).describe();
    expect(schedule.action).toMatchObject({ workflowType: 'imagePoller' });

    digests.v6 = await buildVersion(scene.h.docker, digests.v5, image, '6.0.0', 'v6: from the poller');
    const poll = () => scene.h.temporal.workflow.execute('imagePoller', {
      taskQueue: 'hangar-control',
      workflowId: `test-poll/${randomUUID()}`,
      args: [{ image, healthPollMs: 200 }],
    }) as Promise<{ started: string | null; reason: string }>;
    const first = await poll();
    expect(first.started).toBe(`rollout/${image}@${digests.v6}`);
    expect(await poll()).toMatchObject({ started: null });
    const row = await eventually(() => scene.h.core.db.rollout.findFirst({ where: { workflowId: first.started! } }), 'the rollout row');
    expect(row.trigger).toBe('poller');
    const r = await finished(row.id);
    expect(r.status).toBe('completed');
    // users[9] chose manual mode: offered, not moved.
    for (const u of users.slice(0, 9)) expect(await containerImage(u.agentId)).toBe(digests.v6);
    expect(await containerImage(users[9].agentId)).toBe(digests.v5);
    expect(r.agents.find((a: { agentId: string }) => a.agentId === users[9].agentId).status).toBe('update_available');
    expect(await poll()).toMatchObject({ started: null, reason: 'already rolled out' });

    // Channels follow the settings: removing it removes its schedule.
    await settings({ channels: [] });
    await expect(scene.h.temporal.schedule.getHandle(`image-poller/${image}`).describe()).rejects.toThrow();
  });

  it('admins pause, resume and abort a rollout; a preferred hour holds its wave durably', async () => {
    // users[8] takes updates two hours from now: its wave waits for that hour.
    const ws = (await (await users[8].api('/api/workspaces')).json()).find((w: { personal: boolean }) => w.personal);
    const hour = (new Date().getUTCHours() + 2) % 24;
    expect((await users[8].api(`/api/workspaces/${ws.slug}/update-config`, { method: 'PUT', body: { mode: 'auto', preferredHourUtc: hour } })).status).toBe(200);
    await settings({}, { kind: 'rollingWave', batchPercent: 50, pauseSeconds: 600 });
    digests.v7 = await buildVersion(scene.h.docker, digests.v6, image, '7.0.0', 'v7: admin controls');
    const { id } = await startRollout({});
    expect((await admin.api(`/api/admin/rollouts/${id}/pause`, { method: 'POST' })).status).toBe(200);
    // Wave 0 may already have begun; either way the rollout holds at a boundary.
    const held = await eventually(async () => {
      const r = await rolloutView(id);
      return r.status === 'paused' ? r : null;
    }, 'paused by the admin', 90_000);
    expect(held.reason).toBe('paused by an admin');
    expect((await admin.api(`/api/admin/rollouts/${id}/resume`, { method: 'POST', body: { surprise: 1 } })).status).toBe(400);
    expect((await admin.api(`/api/admin/rollouts/${id}/resume`, { method: 'POST' })).status).toBe(200);
    // Resumed: wave 0 runs, then the 10-minute pause: abort cuts it short.
    await eventually(async () => (await rolloutView(id)).waves[0].status === 'done', 'wave 0 done', 90_000);
    const mid = await rolloutView(id);
    const windowWave = mid.waves.find((w: { agentIds: string[] }) => w.agentIds.includes(users[8].agentId));
    expect(windowWave.index).toBe(mid.waves.length - 1);
    expect((await admin.api(`/api/admin/rollouts/${id}/abort`, { method: 'POST', body: { reason: 'changed my mind' } })).status).toBe(200);
    const r = await finished(id, 30_000);
    expect(r.status).toBe('aborted');
    expect(r.reason).toBe('changed my mind');
    const untouched = r.waves.slice(1).flatMap((w: { agentIds: string[] }) => w.agentIds);
    expect(untouched.length).toBeGreaterThan(0);
    for (const a of untouched) {
      expect(r.agents.find((x: { agentId: string }) => x.agentId === a).status).toBe('skipped');
      expect(await containerImage(a)).toBe(digests.v6);
    }
    for (const a of r.waves[0].agentIds) expect(await containerImage(a)).toBe(digests.v7);
    expect((await admin.api(`/api/admin/rollouts/${id}/resume`, { method: 'POST' })).status).toBe(409);
    expect((await admin.api(`/api/admin/rollouts/${randomUUID()}/abort`, { method: 'POST' })).status).toBe(404);
  });

  it('validates fleet settings and update configs, and keeps them admin-only', async () => {
    const current = await (await admin.api('/api/admin/fleet/settings')).json();
    const bad = [
      { ...current, mode: 'yolo' },
      { ...current, strategy: { ...current.strategy, batchPercent: 101 } },
      { ...current, strategy: { ...current.strategy, extra: 1 } },
      { ...current, imageAllowlist: ['UPPER CASE'] },
      { ...current, defaultPreferredHourUtc: 24 },
      { ...current, channels: [{ image: 'elsewhere/agent:1', pollIntervalSeconds: 60 }] },
      { ...current, channels: [{ image, pollIntervalSeconds: 1 }] },
      { ...current, surprise: true },
    ];
    for (const body of bad) {
      const res = await admin.api('/api/admin/fleet/settings', { method: 'PUT', body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect((await res.json()).error.code).toMatch(/invalid_input|image_not_allowed|validation/);
    }
    expect(await (await admin.api('/api/admin/fleet/settings')).json()).toEqual(current);
    expect((await users[0].api('/api/admin/fleet/settings')).status).toBe(403);
    expect((await users[0].api('/api/admin/fleet/events')).status).toBe(403);
    expect((await admin.api('/api/admin/fleet/events?limit=500')).status).toBe(400);
    const ws = (await (await users[0].api('/api/workspaces')).json()).find((w: { personal: boolean }) => w.personal);
    for (const body of [{ mode: 'sometimes', preferredHourUtc: null }, { mode: 'auto', preferredHourUtc: 24 }, { mode: 'auto' }]) {
      expect((await users[0].api(`/api/workspaces/${ws.slug}/update-config`, { method: 'PUT', body })).status).toBe(400);
    }
    expect((await users[0].api('/api/workspaces/NOT_A_SLUG/update-config')).status).toBe(400);
  });
});
