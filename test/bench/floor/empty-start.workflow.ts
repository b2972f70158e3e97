import { condition, defineUpdate, proxyActivities, proxyLocalActivities, setHandler } from '@temporalio/workflow';

// The shape of a Hangar start with nothing inside it, for the floor bench:
// a local step (Hangar: the row and the spec), an activity on the Docker
// host's own queue (create, start, readiness), a local step (the running row),
// then the update answers. Every step is a no-op, so what a start through it
// costs is Temporal's own round trips on this machine.

export interface NoopActivities {
  noop(): Promise<void>;
}

export const ensureUp = defineUpdate<string>('ensureUp');

export async function emptyLifecycle(hostQueue: string): Promise<void> {
  const local = proxyLocalActivities<NoopActivities>({ startToCloseTimeout: '10 seconds' });
  const host = proxyActivities<NoopActivities>({ startToCloseTimeout: '1 minute', taskQueue: hostQueue });
  setHandler(ensureUp, async () => {
    await local.noop();
    await host.noop();
    await local.noop();
    return 'running';
  });
  // Alive until terminated, as a lifecycle is.
  await condition(() => false);
}
