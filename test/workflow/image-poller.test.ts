import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  DESCRIBE_IMAGE_WORKFLOW,
  IMAGE_POLLER_WORKFLOW,
  rolloutWorkflowId,
  type DescribeImageWorkflow,
  type ImagePollerWorkflow,
  type RolloutWorkflow,
} from '../../core/contracts/rollout.contract.ts';
import { DIGEST, RolloutWorld, target } from '../support/rollout-world.fake.ts';
import { keepHistory, startTier, type Tier } from '../support/workflow-tier.harness.ts';

// The image poller: each of its reasons to do nothing, and the one to start
// `rollout/<image>@<digest>` (as a child that outlives it), exactly once.

const IMAGE = 'hangar-test/agent:stable';

describe('imagePoller and describeImage (time-skipping)', () => {
  const world = new RolloutWorld();
  let t: Tier;

  beforeAll(async () => {
    t = await startTier({ name: 'poller', control: world.control, host: world.host, hostId: 'h1' });
  });
  afterAll(async () => {
    await t?.shutdown();
  });
  beforeEach(() => {
    world.reset();
    world.settings.channels = [{ image: IMAGE, pollIntervalSeconds: 3600 }];
    world.targets = [target('a0'), target('a1')];
  });

  const poll = (image = IMAGE) =>
    t.client.workflow.start<ImagePollerWorkflow>(IMAGE_POLLER_WORKFLOW, { taskQueue: t.taskQueue, workflowId: `poll/${randomUUID()}`, args: [{ image, healthPollMs: 100 }] });

  it('does nothing when the fleet is paused, the image is not allowed or has no channel, or every agent runs the digest', async () => {
    world.settings.mode = 'paused';
    expect(await (await poll()).result()).toEqual({ started: null, reason: 'fleet mode is paused' });
    world.settings.mode = 'auto';
    expect(await (await poll('elsewhere/agent:1')).result()).toEqual({ started: null, reason: 'image is not on the allowlist' });
    world.settings.channels = [];
    expect(await (await poll()).result()).toEqual({ started: null, reason: 'no channel for this image any more' });
    world.settings.channels = [{ image: IMAGE, pollIntervalSeconds: 3600 }];
    world.targets = [];
    expect(await (await poll()).result()).toEqual({ started: null, reason: 'every agent runs this digest' });
    expect(world.opened).toEqual([]);
  });

  it('a new digest starts its rollout once, as the poller, with the image\'s changelog; the next poll finds it taken', async () => {
    const first = await poll();
    expect(await first.result()).toEqual({ started: rolloutWorkflowId(IMAGE, DIGEST), reason: 'new digest' });
    const child = t.client.workflow.getHandle<RolloutWorkflow>(rolloutWorkflowId(IMAGE, DIGEST));
    const r = await child.result();
    expect(r).toMatchObject({ status: 'completed', image: IMAGE, toDigest: DIGEST, changelog: 'v2: faster', strategy: world.settings.strategy });
    expect(world.opened).toHaveLength(1);
    expect(world.applies.map((a) => a.agentId).sort()).toEqual(['a0', 'a1']);

    const again = await poll();
    expect(await again.result()).toEqual({ started: null, reason: 'already rolled out' });
    expect(world.opened).toHaveLength(1);
    await keepHistory(first, 'imagePoller-new-digest');
    await keepHistory(again, 'imagePoller-already-rolled-out');
    await keepHistory(child, 'rollout-from-poller');
  });

  it('describeImage asks the first Docker host, and fails clearly when there is none', async () => {
    const handle = await t.client.workflow.start<DescribeImageWorkflow>(DESCRIBE_IMAGE_WORKFLOW, { taskQueue: t.taskQueue, workflowId: `describe/${randomUUID()}`, args: [{ image: IMAGE }] });
    expect(await handle.result()).toEqual({ image: IMAGE, digest: DIGEST, version: null, changelog: 'v2: faster' });
    await keepHistory(handle, 'describeImage');
    world.hosts = [];
    const none = await t.client.workflow.start<DescribeImageWorkflow>(DESCRIBE_IMAGE_WORKFLOW, { taskQueue: t.taskQueue, workflowId: `describe/${randomUUID()}`, args: [{ image: IMAGE }] });
    const err = await none.result().catch((e) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(err.cause).toMatchObject({ message: 'no Docker host is registered', type: 'no_docker_host' });
  });
});
