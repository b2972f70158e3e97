import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { asSystem } from '../../core/db.ts';
import { agentContainerName } from '../../core/contracts/agent.contract.ts';
import { createTestUser, eventually, useScene, type TestUser } from '../support/hangar.harness.ts';
import { chat, giveProvider } from '../support/scenario.ts';
import { buildVersion } from '../support/test-images.ts';

// An admin rolls out a chosen digest (here: back to the earlier one while the
// tag points at the newer), and the fleet view shows each tenant's update mode.

const repo = `hangar-test/digest-${randomUUID().slice(0, 8)}`;
const image = `${repo}:stable`;
const snapshotDir = await mkdtemp(path.join(os.tmpdir(), 'hangar-snapshots-'));

describe('rollout of a chosen digest; update modes in the fleet view', () => {
  const scene = useScene({ overrides: { HANGAR_AGENT_IMAGE: image, HANGAR_UPDATE_HEALTH_POLL_MS: '200', HANGAR_SNAPSHOT_DIR: snapshotDir } });
  let admin: TestUser;
  let owner: TestUser;
  let agentId: string;
  const digests: Record<string, string> = {};

  beforeAll(async () => {
    digests.v1 = await buildVersion(scene.h.docker, inject('stack').agentImage, image, '1.0.0', 'v1');
    admin = await createTestUser(scene.h, 'admin');
    owner = await createTestUser(scene.h);
    await giveProvider(owner, scene.fake);
    expect((await chat(owner, 'hello')).text).toBe('echo: hello');
    agentId = (await scene.h.core.agents.findOwned('user', owner.id))!.id;
    scene.agentIds.push(agentId);
    const current = await (await admin.api('/api/admin/fleet/settings')).json();
    const res = await admin.api('/api/admin/fleet/settings', {
      method: 'PUT',
      body: { ...current, mode: 'auto', imageAllowlist: ['hangar-test/'], channels: [], strategy: { ...current.strategy, kind: 'immediate', maxRetries: 0, healthTimeoutSeconds: 30 } },
    });
    expect(res.status, await res.clone().text()).toBe(200);
  });
  afterAll(async () => {
    await rm(snapshotDir, { recursive: true, force: true });
    await scene.h?.docker.getImage(image).remove({ force: true }).catch(() => undefined);
  });

  const rollout = async (body: Record<string, unknown>) => {
    const res = await admin.api('/api/admin/rollouts', { body: { image, agentIds: [agentId], ignoreWindows: true, ...body } });
    expect(res.status, await res.clone().text()).toBe(201);
    const { id } = await res.json();
    return eventually(async () => {
      const r = await (await admin.api(`/api/admin/rollouts/${id}`)).json();
      return ['completed', 'aborted', 'failed'].includes(r.status) ? r : null;
    }, `rollout ${id}`, 150_000);
  };
  const running = async () => (await scene.h.docker.getContainer(agentContainerName(agentId)).inspect()).Image;

  it('rolls the tag\'s new digest, then back to the chosen earlier one', async () => {
    expect(await running()).toBe(digests.v1);
    digests.v2 = await buildVersion(scene.h.docker, image, image, '2.0.0', 'v2');
    const forward = await rollout({});
    expect(forward).toMatchObject({ status: 'completed', toDigest: digests.v2 });
    expect(await running()).toBe(digests.v2);

    // The tag still says v2; the admin picks v1.
    for (const bad of ['v1', 'sha256:XYZ', `${digests.v1}0`]) {
      expect((await admin.api('/api/admin/rollouts', { body: { image, toDigest: bad } })).status, bad).toBe(400);
    }
    const back = await rollout({ toDigest: digests.v1 });
    expect(back).toMatchObject({ status: 'completed', toDigest: digests.v1 });
    expect(back.counts.updated).toBe(1);
    expect(await running()).toBe(digests.v1);
    const row = await scene.h.core.agents.get(agentId);
    expect([row.status, row.imageDigest]).toEqual(['running', digests.v1]);
    expect((await chat(owner, 'still here?')).text).toBe('echo: still here?');
    const audit = await asSystem(scene.h.core.db, (tx) => tx.auditLog.findFirst({ where: { action: 'rollout.start', actorId: admin.id }, orderBy: { at: 'desc' } }));
    expect(audit?.after).toMatchObject({ toDigest: digests.v1 });
  });

  it('the fleet view shows each agent\'s update mode and preferred hour, as its tenant set them', async () => {
    const mine = async () => {
      for (let page = 1; page <= 100; page++) {
        const list = await (await admin.api(`/api/admin/agents?page=${page}&limit=200`)).json();
        const found = list.data.find((a: { id: string }) => a.id === agentId);
        if (found || page >= list.meta.totalPages) return found;
      }
      return undefined;
    };
    expect(await mine()).toMatchObject({ updateMode: 'auto', updateAvailable: false });
    const [personal] = (await (await owner.api('/api/workspaces')).json()).filter((w: { personal: boolean }) => w.personal);
    const put = await owner.api(`/api/workspaces/${personal.slug}/update-config`, { method: 'PUT', body: { mode: 'manual', preferredHourUtc: 3 } });
    expect(put.status, await put.clone().text()).toBe(200);
    expect(await mine()).toMatchObject({ updateMode: 'manual', preferredHourUtc: 3 });
  });
});
