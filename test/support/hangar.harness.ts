import { inject } from 'vitest';
import { startHangarOn, type Hangar } from './hangar.runtime.ts';

export * from './hangar.runtime.ts';

/** A Hangar on the stack the global setup started for this run. */
export function startHangar(overrides: Record<string, string> = {}, opts: { worker?: boolean } = {}): Promise<Hangar> {
  return startHangarOn(inject('stack'), overrides, opts);
}
