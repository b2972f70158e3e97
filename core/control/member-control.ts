import type { ProvisioningState } from '../contracts/workspace.contract.ts';
import type { TemporalPort } from './temporal.port.ts';

// Asking a workspace's memberProvisioning workflow to sync. The database
// holds the membership, so a change is done once its transaction commits:
// the request that follows is best effort, and when Temporal is down the
// member-drift schedule catches up once it is back.

export function createMemberControl({ temporal, log = (m: string) => console.warn(m) }: { temporal: TemporalPort; log?: (m: string) => void }) {
  return {
    async requestSync(workspaceId: string, reason: string): Promise<boolean> {
      try {
        await temporal.members.sync(workspaceId, reason);
        return true;
      } catch (err) {
        log(`member sync of workspace ${workspaceId} not requested (${(err as Error).message}); the member-drift schedule will`);
        return false;
      }
    },

    /** The run's state for the UI; null when none runs (nothing owed) or Temporal does not answer. */
    async state(workspaceId: string, waitMs = 2000): Promise<ProvisioningState | null> {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<null>((r) => (timer = setTimeout(() => r(null), waitMs)));
      try {
        return await Promise.race([temporal.members.state(workspaceId).catch(() => null), late]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

export type MemberControl = ReturnType<typeof createMemberControl>;
