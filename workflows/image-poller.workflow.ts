import { ApplicationFailure, ParentClosePolicy, proxyActivities, startChild, uuid4 } from '@temporalio/workflow';
import type { createAgentActivities } from '../activities/agent.activities.ts';
import type { createImageUpdateActivities } from '../activities/image-update.activities.ts';
import type { createRolloutActivities } from '../activities/rollout.activities.ts';
import { dockerTaskQueue } from '../core/contracts/agent.contract.ts';
import {
  isImageAllowed,
  rolloutWorkflowId,
  type DescribeImageWorkflow,
  type ImagePollerWorkflow,
} from '../core/contracts/rollout.contract.ts';
import { rollout } from './rollout.workflow.ts';

const control = proxyActivities<ReturnType<typeof createRolloutActivities> & ReturnType<typeof createAgentActivities>>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 5 },
});

function imagesOn(hostId: string) {
  return proxyActivities<ReturnType<typeof createImageUpdateActivities>>({
    taskQueue: dockerTaskQueue(hostId),
    startToCloseTimeout: '2 minutes',
    retry: { maximumAttempts: 3 },
  });
}

/** What the image (as the first Docker host sees it) is now: digest and changelog. For the API, which has no Docker of its own. */
export const describeImage: DescribeImageWorkflow = async (input) => {
  const [host] = await control.listDockerHosts();
  if (!host) throw ApplicationFailure.nonRetryable('no Docker host is registered', 'no_docker_host');
  return imagesOn(host).describeImage(input.image);
};

/**
 * One run per channel tick (schedule `image-poller/<image>`): a new digest of
 * an allowed image that some agent does not run yet starts
 * `rollout/<image>@<digest>`. Starting it twice is a no-op: the id is taken.
 */
export const imagePoller: ImagePollerWorkflow = async (input) => {
  const settings = await control.fleetSettings();
  if (settings.mode === 'paused') return { started: null, reason: 'fleet mode is paused' };
  if (!isImageAllowed(input.image, settings.imageAllowlist)) return { started: null, reason: 'image is not on the allowlist' };
  if (!settings.channels.some((c) => c.image === input.image)) return { started: null, reason: 'no channel for this image any more' };
  const image = await describeImage({ image: input.image });
  const { targets } = await control.rolloutTargets({ image: input.image, toDigest: image.digest });
  if (targets.length === 0) return { started: null, reason: 'every agent runs this digest' };
  const workflowId = rolloutWorkflowId(input.image, image.digest);
  try {
    await startChild(rollout, {
      workflowId,
      // A digest that was rolled out (or aborted) once is not retried on its own: an admin decides.
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      parentClosePolicy: ParentClosePolicy.ABANDON,
      args: [{
        rolloutId: uuid4(),
        image: input.image,
        toDigest: image.digest,
        strategy: settings.strategy,
        trigger: 'poller',
        changelog: image.changelog,
        healthPollMs: input.healthPollMs,
      }],
      staticSummary: `Rollout of ${input.image} to ${image.digest.slice(7, 19)} (poller)`,
    });
  } catch (err) {
    if ((err as Error).name === 'WorkflowExecutionAlreadyStartedError') return { started: null, reason: 'already rolled out' };
    throw err;
  }
  return { started: workflowId, reason: 'new digest' };
};
