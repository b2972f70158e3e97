import { mkdtemp, readdir, rm, stat, utimes, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
// The reference agent's history module: plain ESM with no dependencies, so its
// capping rules are tested here on a temporary directory.
// @ts-expect-error -- an .mjs file without types, loaded as is
import * as history from '../../docker/agent/history.mjs';

const { capEntry, capsFromEnv, createHistory, keepNewest, truncateText } = history as {
  capEntry(entry: unknown, max: number): { line: string; truncated: boolean };
  capsFromEnv(env: Record<string, string>): { entryBytes: number; sessionEntries: number; sessionBytes: number; totalBytes: number };
  createHistory(dir: string, caps: object): {
    append(id: string, entry: object): Promise<void>;
    list(): Promise<Array<{ id: string; messages: Array<{ role: string; content: string }> }>>;
    usage(): Promise<number>;
  };
  keepNewest(lines: string[], caps: { maxBytes: number; maxEntries: number }): { lines: string[]; bytes: number };
  truncateText(text: string, max: number): string;
};

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');
const entry = (user: string | string[], assistant = 'ok') => ({
  at: new Date().toISOString(),
  model: 'fake/fake-model',
  user: (Array.isArray(user) ? user : [user]).map((content) => ({ role: 'user', content })),
  assistant,
});

const dirs: string[] = [];
async function tmp(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'hangar-history-'));
  dirs.push(d);
  return d;
}
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function sessionFiles(dir: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const n of await readdir(path.join(dir, 'sessions'))) out[n] = (await stat(path.join(dir, 'sessions', n))).size;
  return out;
}

describe('reference agent history caps', () => {
  it('truncates text to a byte budget without splitting a character, saying how much was cut', () => {
    const text = 'é'.repeat(10_000); // 2 bytes each
    const cut = truncateText(text, 1001);
    expect(bytes(cut)).toBeLessThanOrEqual(1001);
    expect(cut).not.toContain('\uFFFD');
    expect(cut).toMatch(/…\[truncated \d+ bytes\]$/);
    expect(truncateText('short', 1000)).toBe('short');
  });

  it('caps a 4 MB turn to the per-entry limit and keeps its start', () => {
    const big = 'a'.repeat(200_000);
    const { line, truncated } = capEntry(entry(Array(20).fill(big), 'b'.repeat(200_000)), 64 * 1024);
    expect(truncated).toBe(true);
    expect(bytes(line)).toBeLessThanOrEqual(64 * 1024);
    const parsed = JSON.parse(line);
    expect(parsed.user[0].content.startsWith('aaaa')).toBe(true);
    expect(parsed.assistant).toMatch(/^b+\n…\[truncated \d+ bytes\]$/);
    // Small entries are stored exactly as given.
    const small = entry('hello');
    expect(capEntry(small, 1024)).toEqual({ line: JSON.stringify(small), truncated: false });
  });

  it('fits texts that grow when escaped, and drops the oldest messages when even their skeletons do not fit', () => {
    const escaped = capEntry(entry('\u0001"\n'.repeat(100_000)), 8 * 1024);
    expect(bytes(escaped.line)).toBeLessThanOrEqual(8 * 1024);
    const many = capEntry(entry(Array.from({ length: 500 }, (_, i) => `message ${i}`)), 2 * 1024);
    expect(bytes(many.line)).toBeLessThanOrEqual(2 * 1024);
    const parsed = JSON.parse(many.line);
    expect(parsed.droppedMessages).toBeGreaterThan(0);
    expect(parsed.user.at(-1).content).toBe('message 499');
  });

  it('keeps the newest lines within bytes and count', () => {
    const lines = ['a'.repeat(9), 'b'.repeat(9), 'c'.repeat(9)];
    expect(keepNewest(lines, { maxBytes: 25, maxEntries: 10 })).toEqual({ lines: lines.slice(1), bytes: 20 });
    expect(keepNewest(lines, { maxBytes: 1000, maxEntries: 1 }).lines).toEqual(['c'.repeat(9)]);
  });

  it('reads caps from the environment, keeping defaults for nonsense and one entry within a session', () => {
    expect(capsFromEnv({ HISTORY_MAX_ENTRY_BYTES: 'lots' }).entryBytes).toBe(64 * 1024);
    const caps = capsFromEnv({ HISTORY_MAX_ENTRY_BYTES: '10000', HISTORY_MAX_SESSION_BYTES: '5000', HISTORY_MAX_TOTAL_BYTES: '2000' });
    expect(caps.sessionBytes).toBeGreaterThan(caps.entryBytes);
    expect(caps.totalBytes).toBeGreaterThanOrEqual(caps.sessionBytes);
  });

  it('a session under a flood of 4 MB turns stays under its byte and entry caps, newest kept', async () => {
    const dir = await tmp();
    const caps = { entryBytes: 16 * 1024, sessionEntries: 1000, sessionBytes: 100 * 1024, totalBytes: 1024 * 1024 };
    const h = createHistory(dir, caps);
    const huge = 'x'.repeat(4 * 1024 * 1024);
    for (let i = 0; i < 30; i++) {
      await h.append('flood', entry(`${i} ${huge}`));
      expect((await sessionFiles(dir))['flood.jsonl']).toBeLessThanOrEqual(caps.sessionBytes);
    }
    const [session] = await h.list();
    expect(session.messages.at(-2)!.content.startsWith('29 xxx')).toBe(true);
    expect(session.messages.length).toBeLessThan(60);

    const counted = createHistory(await tmp(), { ...caps, sessionEntries: 10 });
    for (let i = 0; i < 25; i++) await counted.append('s', entry(`n${i}`));
    const [few] = await counted.list();
    expect(few.messages.length / 2).toBeLessThanOrEqual(10);
    expect(few.messages.at(-2)!.content).toBe('n24');
  });

  it('keeps all sessions under the total cap by dropping the least recently written', async () => {
    const dir = await tmp();
    const caps = { entryBytes: 8 * 1024, sessionEntries: 1000, sessionBytes: 32 * 1024, totalBytes: 64 * 1024 };
    const h = createHistory(dir, caps);
    for (let i = 0; i < 12; i++) {
      for (let k = 0; k < 3; k++) await h.append(`s${i}`, entry('y'.repeat(8 * 1024)));
      const files = await sessionFiles(dir);
      expect(Object.values(files).reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(caps.totalBytes);
      expect(files[`s${i}.jsonl`]).toBeGreaterThan(0);
    }
    expect(await h.usage()).toBeLessThanOrEqual(caps.totalBytes);
    const names = Object.keys(await sessionFiles(dir));
    expect(names).toContain('s11.jsonl');
    expect(names).not.toContain('s0.jsonl');
  });

  it('compacts a session written before there were caps, and clears a torn compaction', async () => {
    const dir = await tmp();
    await mkdir(path.join(dir, 'sessions'), { recursive: true });
    const old = Array.from({ length: 2000 }, (_, i) => JSON.stringify(entry(`old ${i} ${'z'.repeat(500)}`))).join('\n') + '\n';
    await writeFile(path.join(dir, 'sessions', 'legacy.jsonl'), old);
    await writeFile(path.join(dir, 'sessions', 'legacy.jsonl.tmp'), 'half');
    const past = new Date(Date.now() - 60_000);
    await utimes(path.join(dir, 'sessions', 'legacy.jsonl'), past, past);
    const caps = { entryBytes: 4 * 1024, sessionEntries: 100, sessionBytes: 64 * 1024, totalBytes: 10 * 1024 * 1024 };
    const h = createHistory(dir, caps);
    await h.append('legacy', entry('new one'));
    const files = await sessionFiles(dir);
    expect(files['legacy.jsonl']).toBeLessThanOrEqual(caps.sessionBytes);
    expect(files['legacy.jsonl.tmp']).toBeUndefined();
    const [session] = await h.list();
    expect(session.messages.at(-2)!.content).toBe('new one');
    expect(session.messages.at(-4)!.content).toMatch(/^old 1999 /);
  });
});
