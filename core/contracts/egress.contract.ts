// Pure types and ids of the agent egress policy, shared by the workflow, the
// Docker-host activity and the API.

/** One workflow per Docker host; a newer save replaces a run still waiting for its worker. */
export const egressPolicyWorkflowId = (hostId: string) => `egress-policy/${hostId}`;
export const EGRESS_POLICY_WORKFLOW = 'egressPolicy';
export type EgressPolicyWorkflow = (input: { hostId: string }) => Promise<EgressReport>;

/** What a Docker-host worker did when asked to apply its policy. */
export interface EgressReport {
  hostId: string;
  /** false: HANGAR_EGRESS_POLICY=off, or iptables is unusable on a non-production host (see reason). */
  enforced: boolean;
  reason: string | null;
  /** The networks whose bridges got the rules. */
  networks: Array<{ network: string; bridge: string }>;
  /** The allowlist as applied (canonical entries). */
  allow: string[];
}
