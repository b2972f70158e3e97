import { RateLimitedError } from '../core/errors.ts';

// Long-lived answers this API process holds open for a user: server-sent
// event streams and in-flight chats. One registry, so that
//  - no single user can take every stream slot (a per-user cap, 429), and
//  - deactivating a user ends their open streams and chats at once, instead
//    of letting them run on until they finish or time out.
// In-process by design: each API replica ends what it holds (the event
// stream also re-checks its caller, which covers the other replicas).

export type LiveKind = 'stream' | 'chat';

export interface LiveHandle {
  /**
   * Aborted when the user is deactivated (reason: 'account_deactivated').
   * Made on first read: a chat, on the proxy's hot path, takes `onAbort`
   * instead and never pays for an AbortController and its DOMException.
   */
  readonly signal: AbortSignal;
  /** Whether the user was deactivated while this was open. */
  readonly aborted: boolean;
  release(): void;
}

interface Entry {
  kind: LiveKind;
  aborted: boolean;
  controller: AbortController | null;
  onAbort: (() => void) | undefined;
}

export function createLiveConnections(opts: { maxStreams: number; maxStreamsPerUser: number }) {
  const byUser = new Map<string, Set<Entry>>();
  let streams = 0;

  const streamsOf = (userId: string) => [...(byUser.get(userId) ?? [])].filter((e) => e.kind === 'stream').length;

  return {
    /**
     * Registers one open answer; streams are capped in total and per user.
     * `onAbort` runs (once) when the user is deactivated.
     */
    open(userId: string, kind: LiveKind, onAbort?: () => void): LiveHandle {
      if (kind === 'stream') {
        if (streamsOf(userId) >= opts.maxStreamsPerUser) {
          throw new RateLimitedError(`You already have ${opts.maxStreamsPerUser} live streams open; close one first`, 5, 'too_many_streams');
        }
        if (streams >= opts.maxStreams) throw new RateLimitedError('Too many live streams; try again shortly', 5);
        streams++;
      }
      const entry: Entry = { kind, aborted: false, controller: null, onAbort };
      if (!byUser.has(userId)) byUser.set(userId, new Set());
      byUser.get(userId)!.add(entry);
      let released = false;
      return {
        get signal() {
          if (!entry.controller) {
            entry.controller = new AbortController();
            if (entry.aborted) entry.controller.abort('account_deactivated');
          }
          return entry.controller.signal;
        },
        get aborted() {
          return entry.aborted;
        },
        release() {
          if (released) return;
          released = true;
          if (kind === 'stream') streams--;
          const set = byUser.get(userId);
          set?.delete(entry);
          if (set?.size === 0) byUser.delete(userId);
        },
      };
    },

    /** Ends everything the user has open here; returns how many were ended. */
    closeUser(userId: string): number {
      const entries = [...(byUser.get(userId) ?? [])];
      for (const e of entries) {
        if (e.aborted) continue;
        e.aborted = true;
        e.controller?.abort('account_deactivated');
        e.onAbort?.();
      }
      return entries.length;
    },

    count(userId?: string): number {
      return userId ? (byUser.get(userId)?.size ?? 0) : [...byUser.values()].reduce((n, s) => n + s.size, 0);
    },
  };
}

export type LiveConnections = ReturnType<typeof createLiveConnections>;
