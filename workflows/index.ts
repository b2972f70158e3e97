// The worker bundles this file: every workflow type Hangar runs.
export { agentLifecycle } from './agent-lifecycle.workflow.ts';
export { idleReaper } from './idle-reaper.workflow.ts';
export { fleetReconcile } from './fleet-reconcile.workflow.ts';
export { onboarding } from './onboarding.workflow.ts';
export { rollout } from './rollout.workflow.ts';
export { imagePoller, describeImage } from './image-poller.workflow.ts';
export { egressPolicy } from './egress-policy.workflow.ts';
export { memberProvisioning, memberDrift } from './member-provisioning.workflow.ts';
export { federationCommand } from './federation-command.workflow.ts';
export { retireAgent } from './retire-agent.workflow.ts';
