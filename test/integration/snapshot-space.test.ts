import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createImageUpdateActivities } from '../../activities/image-update.activities.ts';
import { agentContainerName, agentVolumeName } from '../../core/contracts/agent.contract.ts';
import { createTestUser, eventually, useScene, type TestUser } from '../support/hangar.harness.ts';
import { chat, giveProvider, execIn, filesUnder } from '../support/scenario.ts';
import { buildVersion } from '../support/test-images.ts';

// The free-space check before a volume snapshot, on a real disk that is too
// small: a 4 MB tmpfs mounted for this file as the snapshot directory, with
// 1 MB that must stay free. An agent holding 6 MB is skipped by a rollout
// (never stopped, still on its old image); once it holds little, the same
// disk takes its snapshot and the update goes through.

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;
const repo = `hangar-test/snapspace-${randomUUID().slice(0, 8)}`;
const image = `${repo}:stable`;
const MARGIN_MB = 1;
const FILLER_MB = 6;

const snapshotDir = await mkdtemp(path.join(os.tmpdir(), 'hangar-snapspace-'));
if (isRoot) await run('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', snapshotDir]);

describe.skipIf(!isRoot)('free space before a snapshot (4 MB tmpfs)', () => {
  const scene = useScene({
    overrides: {
      HANGAR_AGENT_IMAGE: image,
      HANGAR_SNAPSHOT_DIR: snapshotDir,
      HANGAR_SNAPSHOT_MIN_FREE_MB: String(MARGIN_MB),
      HANGAR_UPDATE_HEALTH_POLL_MS: '200',
    },
  });
  let admin: TestUser;
  let user: TestUser;
  let agentId: string;
  const digests: Record<string, string> = {};

  const container = () => scene.h.docker.getContainer(agentContainerName(agentId));
  async function rollTo(version: string) {
    digests[version] = await buildVersion(scene.h.docker, image, image, version, `${version}: snapshot space test`);
    const res = await admin.api('/api/admin/rollouts', { body: { image, agentIds: [agentId], strategy: { kind: 'singleAgent' } } });
    expect(res.status, await res.clone().text()).toBe(201);
    const { id } = await res.json();
    return eventually(async () => {
      const r = await (await admin.api(`/api/admin/rollouts/${id}`)).json();
      return ['completed', 'aborted', 'failed'].includes(r.status) ? r : null;
    }, `rollout to ${version}`, 120_000);
  }

  beforeAll(async () => {
    digests.v1 = await buildVersion(scene.h.docker, inject('stack').agentImage, image, '1.0.0', 'v1');
    admin = await createTestUser(scene.h, 'admin');
    const current = await (await admin.api('/api/admin/fleet/settings')).json();
    const put = await admin.api('/api/admin/fleet/settings', { method: 'PUT', body: { ...current, mode: 'auto', imageAllowlist: ['hangar-test/'], channels: [] } });
    expect(put.status, await put.clone().text()).toBe(200);
    user = await createTestUser(scene.h);
    await giveProvider(user, scene.fake);
    expect((await chat(user, 'before the update')).text).toBe('echo: before the update');
    agentId = (await scene.h.core.agents.findOwned('user', user.id))!.id;
    scene.agentIds.push(agentId);
    const fill = `require('fs').writeFileSync('/data/filler', Buffer.alloc(${FILLER_MB} * 1024 * 1024, 7))`;
    expect(await execIn(container(), ['node', '-e', fill])).toBe(0);
  });

  afterAll(async () => {
    if (isRoot) await run('umount', [snapshotDir]).catch(() => undefined);
    await rm(snapshotDir, { recursive: true, force: true });
    await scene.h?.docker.getImage(image).remove({ force: true }).catch(() => undefined);
  });

  it('a rollout skips an agent whose volume would not fit, without ever stopping it', async () => {
    const before = await container().inspect();
    const r = await rollTo('2.0.0');
    expect(r.status).toBe('completed');
    const entry = r.agents.find((a: { agentId: string }) => a.agentId === agentId);
    expect(entry.status).toBe('skipped');
    expect(entry.error).toMatch(/^snapshot_no_space: not enough free space in .*: the volume holds 6\.0 MB, 4\.0 MB are free, and 1\.0 MB must stay free/);
    const after = await container().inspect();
    expect(after.Id).toBe(before.Id);
    expect(after.State.StartedAt).toBe(before.State.StartedAt);
    expect(after.Image).toBe(digests.v1);
    expect((await scene.h.core.agents.get(agentId)).status).toBe('running');
    expect(await filesUnder(snapshotDir)).toEqual([]);
    const events = await (await admin.api(`/api/admin/fleet/events?rolloutId=${r.id}&agentId=${agentId}`)).json();
    expect(events.data.find((e: { type: string }) => e.type === 'agent.skipped')?.payload.error).toMatch(/^snapshot_no_space/);
    expect((await chat(user, 'still here')).text).toBe('echo: still here');
  });

  it('a snapshot that outgrows the disk while streaming stops before the margin and leaves nothing behind', async () => {
    // As if the volume had been measured empty: only the guard on the stream stands in the way.
    const activities = createImageUpdateActivities({
      docker: scene.h.docker,
      snapshotDir,
      minFreeBytes: MARGIN_MB * 1024 * 1024,
      sizer: { sizes: async () => new Map() },
    });
    const env = new MockActivityEnvironment();
    const err = await env
      .run(activities.snapshotVolume, { containerName: agentContainerName(agentId), agentId, key: 'guard-test', volumeName: agentVolumeName(agentId) })
      .then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('snapshot_no_space');
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    // Stopped by the guard, before the margin: not by the disk filling up.
    expect((err as ApplicationFailure).message).toMatch(/^snapshot stopped after [\d.]+ MB: only [\d.]+ MB left free/);
    expect(await filesUnder(snapshotDir)).toEqual([]);
  });

  it('once the volume is small again, the same disk takes the snapshot and the update goes through', async () => {
    expect(await execIn(container(), ['node', '-e', "require('fs').rmSync('/data/filler')"])).toBe(0);
    const r = await rollTo('3.0.0');
    expect(r.status).toBe('completed');
    expect(r.agents.find((a: { agentId: string }) => a.agentId === agentId).status).toBe('updated');
    expect((await container().inspect()).Image).toBe(digests['3.0.0']);
    expect(JSON.stringify(await (await user.api('/api/chat/sessions')).json())).toContain('before the update');
  });
});
