import { describe, expect, it, vi } from 'vitest';
import type { Agent, User } from '../../core/db.ts';
import { createLookupCache } from '../../core/services/lookup-cache.service.ts';

// The chat path's in-memory lookups: they may only answer while change
// notifications are heard, and every kind of change drops what it touches.
const user = (id: string) => ({ id, status: 'active', displayName: id }) as unknown as User;
const token = (id: string, userId: string) => ({ tokenId: id, user: user(userId), scopes: ['*'], expiresAt: null, lastUsedAt: null });
const agent = (id: string, ownerId: string) => ({ id, ownerKind: 'user', ownerId, name: 'default', status: 'running' }) as unknown as Agent;

function listeningCache(opts?: { maxEntries?: number; ttlMs?: number }) {
  const source = { listening: true };
  const cache = createLookupCache(opts);
  cache.attach(source);
  return { cache, source };
}

describe('lookup cache', () => {
  it('holds nothing and answers nothing while no change listener is attached or it is not listening', () => {
    const cache = createLookupCache();
    cache.setToken('h1', token('t1', 'u1'), cache.mark());
    expect(cache.getToken('h1')).toBeUndefined();
    const source = { listening: false };
    cache.attach(source);
    cache.setToken('h1', token('t1', 'u1'), cache.mark());
    expect(cache.getToken('h1')).toBeUndefined();
    source.listening = true;
    cache.setToken('h1', token('t1', 'u1'), cache.mark());
    expect(cache.getToken('h1')?.tokenId).toBe('t1');
    // The connection drops: nothing is answered from memory until it is back.
    source.listening = false;
    expect(cache.getToken('h1')).toBeUndefined();
  });

  it('refuses to store a lookup that raced an invalidation', () => {
    const { cache } = listeningCache();
    const mark = cache.mark();
    // A revocation commits while the read is under way…
    cache.apply({ t: 'api_tokens', tokenHash: 'h1' });
    // …so the row the read saw (still valid) must not be remembered.
    cache.setToken('h1', token('t1', 'u1'), mark);
    expect(cache.getToken('h1')).toBeUndefined();
    cache.setToken('h1', token('t1', 'u1'), cache.mark());
    expect(cache.getToken('h1')).toBeDefined();
  });

  it('drops exactly what each change touches', () => {
    const { cache } = listeningCache();
    const m = cache.mark();
    cache.setToken('h1', token('t1', 'u1'), m);
    cache.setToken('h2', token('t2', 'u1'), m);
    cache.setToken('h3', token('t3', 'u2'), m);
    cache.setSession('s1', { user: user('u1'), csrfToken: 'c', expiresAt: new Date(Date.now() + 60_000) }, m);
    cache.setSession('s2', { user: user('u2'), csrfToken: 'c', expiresAt: new Date(Date.now() + 60_000) }, m);
    cache.setAgent(agent('a1', 'u1'), m);
    cache.setAgent(agent('a2', 'u2'), m);

    cache.apply({ t: 'api_tokens', tokenHash: 'h2', id: 't2', userId: 'u1' });
    expect([cache.getToken('h1'), cache.getToken('h2'), cache.getToken('h3')].map((t) => t?.tokenId)).toEqual(['t1', undefined, 't3']);
    // This process's own revocation knows the id only.
    cache.apply({ t: 'api_tokens', id: 't3' });
    expect(cache.getToken('h3')).toBeUndefined();

    cache.apply({ t: 'agents', id: 'a1', ownerKind: 'user', ownerId: 'u1', name: 'default' });
    expect(cache.getAgent('user', 'u1', 'default')).toBeUndefined();
    expect(cache.getAgent('user', 'u2', 'default')?.id).toBe('a2');

    cache.apply({ t: 'sessions', tokenHash: 's2', userId: 'u2' });
    expect(cache.getSession('s2')).toBeUndefined();
    expect(cache.getSession('s1')).toBeDefined();

    // A user change drops every credential of theirs, and nobody else's.
    cache.setToken('h4', token('t4', 'u2'), cache.mark());
    cache.apply({ t: 'users', id: 'u1', status: 'active' });
    expect(cache.getToken('h1')).toBeUndefined();
    expect(cache.getSession('s1')).toBeUndefined();
    expect(cache.getToken('h4')?.tokenId).toBe('t4');
  });

  it('tells every subscriber when a user is deactivated, not when they merely change', () => {
    const { cache } = listeningCache();
    const seen: string[] = [];
    const off = cache.onUserDeactivated((id) => seen.push(id));
    cache.apply({ t: 'users', id: 'u1', status: 'active' });
    cache.apply({ t: 'users', id: 'u2', status: 'deactivated' });
    off();
    cache.apply({ t: 'users', id: 'u3', status: 'deactivated' });
    expect(seen).toEqual(['u2']);
  });

  it('is bounded: oldest out first, and entries past their TTL read as absent', async () => {
    // The clock moves past the TTL on the test's word, not by waiting.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const { cache } = listeningCache({ maxEntries: 2, ttlMs: 30 });
      for (const h of ['h1', 'h2', 'h3']) cache.setToken(h, token(h, 'u'), cache.mark());
      expect(cache.getToken('h1')).toBeUndefined();
      expect(cache.getToken('h3')).toBeDefined();
      expect(cache.size().tokens).toBe(2);
      vi.setSystemTime(Date.now() + 31);
      expect(cache.getToken('h3')).toBeUndefined();
    } finally {
      vi.useRealTimers();
    }
  });

  it('reset forgets everything and fences lookups under way', () => {
    const { cache } = listeningCache();
    const mark = cache.mark();
    cache.setAgent(agent('a1', 'u1'), mark);
    cache.reset();
    expect(cache.getAgent('user', 'u1', 'default')).toBeUndefined();
    cache.setAgent(agent('a1', 'u1'), mark);
    expect(cache.getAgent('user', 'u1', 'default')).toBeUndefined();
  });
});
