import type { DbChange } from '../runtime/db-changes.runtime.ts';
import type { Agent, User } from '../db.ts';

// The chat path's lookups in memory: API token → user, session → user, owner
// → agent row. Without them every chat paid three database transactions
// before a byte reached the agent (the proxy's main cost when profiled).
//
// Correctness rests on invalidation, not on expiry:
//  - every write that could make an entry wrong fires a NOTIFY from a trigger
//    (whoever writes: API, worker, CLI), delivered when it commits; every API
//    process drops the entry on arrival;
//  - the process that made the write drops it itself right after the commit,
//    so its own next request never waits for the notification;
//  - while the LISTEN connection is down the cache is bypassed (every lookup
//    goes to the database, as before) and it starts empty when it is back;
//  - a lookup that raced an invalidation is not stored: `mark()` before the
//    read, and `set` refuses when anything was invalidated since.
// Only rows that exist are cached: an unknown token costs a query each time.

export interface CachedToken {
  tokenId: string;
  user: User;
  scopes: string[];
  expiresAt: Date | null;
  lastUsedAt: Date | null;
}

export interface CachedSession {
  user: User;
  csrfToken: string;
  expiresAt: Date;
}

interface Entry<T> {
  value: T;
  storedAt: number;
}

/** A bounded map: oldest out first; entries past the TTL read as absent. */
function store<T>(max: number, ttlMs: number) {
  const map = new Map<string, Entry<T>>();
  return {
    map,
    get(key: string): T | undefined {
      const e = map.get(key);
      if (!e) return undefined;
      if (Date.now() - e.storedAt > ttlMs) {
        map.delete(key);
        return undefined;
      }
      return e.value;
    },
    set(key: string, value: T) {
      map.delete(key);
      map.set(key, { value, storedAt: Date.now() });
      if (map.size > max) map.delete(map.keys().next().value!);
    },
    dropWhere(pred: (v: T) => boolean) {
      for (const [k, e] of map) if (pred(e.value)) map.delete(k);
    },
  };
}

export const agentKey = (ownerKind: string, ownerId: string, name: string) => `${ownerKind}/${ownerId}/${name}`;

export function createLookupCache(opts: { maxEntries?: number; ttlMs?: number } = {}) {
  const max = opts.maxEntries ?? 20_000;
  // A backstop for memory, not for correctness (that is invalidation's job).
  const ttl = opts.ttlMs ?? 10 * 60_000;
  const tokens = store<CachedToken>(max, ttl);
  const sessions = store<CachedSession>(max, ttl);
  const agents = store<Agent>(max, ttl);
  let generation = 0;
  let source: { readonly listening: boolean } | null = null;
  const userDeactivated = new Set<(userId: string) => void>();
  const active = () => source?.listening === true;

  function reset() {
    generation++;
    tokens.map.clear();
    sessions.map.clear();
    agents.map.clear();
  }

  return {
    /** Turns the cache on while `from` listens (core's change listener). */
    attach(from: { readonly listening: boolean }) {
      source = from;
    },
    get active() {
      return active();
    },
    /** Taken before a database read whose answer may be stored. */
    mark: () => generation,

    getToken: (hash: string) => (active() ? tokens.get(hash) : undefined),
    setToken(hash: string, value: CachedToken, mark: number) {
      if (active() && mark === generation) tokens.set(hash, value);
    },
    getSession: (hash: string) => (active() ? sessions.get(hash) : undefined),
    setSession(hash: string, value: CachedSession, mark: number) {
      if (active() && mark === generation) sessions.set(hash, value);
    },
    getAgent: (ownerKind: string, ownerId: string, name: string) => (active() ? agents.get(agentKey(ownerKind, ownerId, name)) : undefined),
    setAgent(agent: Agent, mark: number) {
      if (active() && mark === generation) agents.set(agentKey(agent.ownerKind, agent.ownerId, agent.name), agent);
    },

    /** A committed change, from a notification or from this process's own write. */
    apply(change: DbChange) {
      generation++;
      switch (change.t) {
        case 'users':
          if (!change.id) return reset();
          tokens.dropWhere((v) => v.user.id === change.id);
          sessions.dropWhere((v) => v.user.id === change.id);
          // Deactivated or suspended: what they hold open ends too.
          if (change.status === 'deactivated' || change.status === 'suspended') for (const fn of userDeactivated) fn(change.id);
          return;
        case 'api_tokens':
          if (change.tokenHash) tokens.map.delete(change.tokenHash);
          else if (change.id) tokens.dropWhere((v) => v.tokenId === change.id);
          else tokens.map.clear();
          return;
        case 'sessions':
          if (change.tokenHash) sessions.map.delete(change.tokenHash);
          else if (change.userId) sessions.dropWhere((v) => v.user.id === change.userId);
          else sessions.map.clear();
          return;
        case 'agents':
          if (change.ownerKind && change.ownerId && change.name) agents.map.delete(agentKey(change.ownerKind, change.ownerId, change.name));
          else if (change.id) agents.dropWhere((v) => v.id === change.id);
          else agents.map.clear();
          return;
        default:
          reset();
      }
    },
    reset,

    /** Called for every user deactivated anywhere (any process's write): ends what this process holds open for them. */
    onUserDeactivated(fn: (userId: string) => void): () => void {
      userDeactivated.add(fn);
      return () => userDeactivated.delete(fn);
    },

    size: () => ({ tokens: tokens.map.size, sessions: sessions.map.size, agents: agents.map.size }),
  };
}

export type LookupCache = ReturnType<typeof createLookupCache>;
