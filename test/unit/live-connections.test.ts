import { describe, expect, it } from 'vitest';
import { createLiveConnections } from '../../api/live-connections.ts';
import { securityHeaders } from '../../api/security-headers.ts';

describe('live connections', () => {
  it('deactivation runs each chat\'s callback once and aborts signals read before or after', () => {
    const live = createLiveConnections({ maxStreams: 10, maxStreamsPerUser: 2 });
    let cuts = 0;
    const chat = live.open('u1', 'chat', () => cuts++);
    const stream = live.open('u1', 'stream');
    const early = stream.signal;
    const other = live.open('u2', 'chat', () => cuts += 100);
    expect(live.closeUser('u1')).toBe(2);
    expect(live.closeUser('u1')).toBe(2);
    expect(cuts).toBe(1);
    expect(chat.aborted).toBe(true);
    expect(early.aborted).toBe(true);
    // A signal first read after the cut is born aborted, with the reason.
    expect(chat.signal.aborted).toBe(true);
    expect(chat.signal.reason).toBe('account_deactivated');
    expect(other.aborted).toBe(false);
    chat.release();
    stream.release();
    expect(live.count('u1')).toBe(0);
    expect(live.count()).toBe(1);
  });

  it('streams are capped per user and released slots are reusable', () => {
    const live = createLiveConnections({ maxStreams: 10, maxStreamsPerUser: 1 });
    const first = live.open('u1', 'stream');
    expect(() => live.open('u1', 'stream')).toThrow(/live streams open/);
    first.release();
    first.release();
    expect(() => live.open('u1', 'stream').release()).not.toThrow();
  });
});

describe('security headers', () => {
  it("are helmet's, computed once, with the CSP Swagger UI needs", () => {
    const headers = securityHeaders();
    expect(headers['x-content-type-options']).toBe('nosniff');
    expect(headers['x-frame-options']).toBe('SAMEORIGIN');
    expect(headers['strict-transport-security']).toMatch(/max-age=/);
    expect(headers['content-security-policy']).toContain("script-src 'self'");
    expect(headers['content-security-policy']).toContain("img-src 'self' data:");
    expect(headers['content-security-policy']).toContain("default-src 'self'");
    expect(Object.isFrozen(headers)).toBe(true);
  });
});
