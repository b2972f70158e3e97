import { AppError } from '../errors.ts';
import type { AgentService } from '../services/agents.service.ts';
import type { TemporalPort } from './temporal.port.ts';

// Applying a saved egress allowlist: the `egressPolicy` workflow on every
// registered Docker host, each of whose worker owns its host's firewall. The
// API never touches Docker or iptables itself.

/** How long a save waits for the hosts to report before answering "pending". */
const APPLY_WAIT_MS = 15_000;

export type HostApplyResult = {
  hostId: string;
  workflowId: string;
  status: 'applied' | 'not_enforced' | 'pending' | 'failed';
  reason: string | null;
  networks: Array<{ network: string; bridge: string }>;
};

export function createEgressControl({ temporal, agents }: { temporal: TemporalPort; agents: AgentService }) {
  return {
    async applyEverywhere(waitMs = APPLY_WAIT_MS): Promise<HostApplyResult[]> {
      const hosts = (await agents.listDockerHostIds()).sort();
      return Promise.all(hosts.map(async (hostId): Promise<HostApplyResult> => {
        const workflowId = `egress-policy/${hostId}`;
        try {
          const report = await temporal.egress.apply(hostId, waitMs);
          if (!report) return { hostId, workflowId, status: 'pending', reason: 'the host has not reported yet (its worker applies the policy when it starts)', networks: [] };
          return { hostId, workflowId, status: report.enforced ? 'applied' : 'not_enforced', reason: report.reason, networks: report.networks };
        } catch (err) {
          // One host failing is that host's answer; Temporal being down is everyone's (503).
          if (err instanceof AppError && err.code !== 'temporal_unavailable') return { hostId, workflowId, status: 'failed', reason: err.message, networks: [] };
          throw err;
        }
      }));
    },
  };
}

export type EgressControl = ReturnType<typeof createEgressControl>;
