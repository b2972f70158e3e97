import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EGRESS_POLICY_WORKFLOW, egressPolicyWorkflowId, type EgressPolicyWorkflow, type EgressReport } from '../../core/contracts/egress.contract.ts';
import { keepHistory, startTier, type Tier } from '../support/workflow-tier.harness.ts';

// egressPolicy runs one activity on the Docker host's own queue: the host
// whose worker owns the firewall is the one that applies it, and a worker that
// is down is waited for (its activity retries) rather than skipped.
describe('egressPolicy (time-skipping)', () => {
  let t: Tier;
  let calls = 0;
  let failFirst = 0;
  const report: EgressReport = { hostId: 'host-egress', enforced: true, reason: null, networks: [{ network: 'hangar-agents', bridge: 'br-1' }], allow: ['host:8080'] };

  beforeAll(async () => {
    t = await startTier({
      name: 'egress',
      control: {},
      host: {
        applyEgressPolicy: async () => {
          calls++;
          if (failFirst-- > 0) throw new Error('iptables-restore: resource busy');
          return report;
        },
      } as never,
    });
  });
  afterAll(async () => {
    await t?.shutdown();
  });

  it('applies the policy on the host\'s own queue and reports what it did, retrying a transient failure', async () => {
    failFirst = 2;
    const handle = await t.client.workflow.start<EgressPolicyWorkflow>(EGRESS_POLICY_WORKFLOW, {
      taskQueue: t.taskQueue,
      workflowId: egressPolicyWorkflowId(t.hostId),
      args: [{ hostId: t.hostId }],
    });
    expect(await handle.result()).toEqual(report);
    expect(calls).toBe(3);
    await keepHistory(handle, 'egress-policy');
  });
});
