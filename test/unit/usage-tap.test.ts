import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { usageReader, usageTap, type Usage } from '../../api/usage-tap.ts';
import { periodOf, resetsAt } from '../../core/services/usage.service.ts';

// The chat proxy meters an answer's `usage` as the answer passes: the bytes
// must come out unchanged, chunk for chunk, however the agent split them.

/** `text` cut into pieces of `size` bytes (splitting lines, JSON and UTF-8 characters anywhere). */
function pieces(text: string, size: number): Buffer[] {
  const all = Buffer.from(text, 'utf8');
  const out: Buffer[] = [];
  for (let i = 0; i < all.length; i += size) out.push(all.subarray(i, i + size));
  return out;
}

async function through(kind: 'json' | 'sse', chunks: Buffer[]): Promise<{ out: Buffer[]; usage: Usage[] }> {
  const usage: Usage[] = [];
  const out: Buffer[] = [];
  const tap = Readable.from(chunks, { objectMode: false }).pipe(usageTap(kind, (u) => usage.push(u)));
  // Flowing: each chunk the tap hands on is seen as it was handed on.
  tap.on('data', (c: Buffer) => out.push(c));
  await new Promise((resolve, reject) => tap.on('end', resolve).on('error', reject));
  return { out, usage };
}

const plain = JSON.stringify({
  id: 'c1',
  object: 'chat.completion',
  model: 'gpt-x',
  choices: [{ index: 0, message: { role: 'assistant', content: 'héllo wörld ✓' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 31, completion_tokens: 7, total_tokens: 38 },
});

const sse = [
  { choices: [{ index: 0, delta: { content: 'hé' } }] },
  { choices: [{ index: 0, delta: { content: 'llo "usage"' } }] },
  { choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], model: 'gpt-s', usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 } },
].map((c) => `data: ${JSON.stringify(c)}\r\n\r\n`).join('') + 'data: [DONE]\n\n';

describe('usage tap', () => {
  for (const size of [1, 3, 17, 4096]) {
    it(`a plain JSON answer in ${size}-byte chunks: passed on unchanged, usage read`, async () => {
      const chunks = pieces(plain, size);
      const { out, usage } = await through('json', chunks);
      expect(out.length).toBe(chunks.length);
      expect(Buffer.concat(out).toString('utf8')).toBe(plain);
      expect(usage).toEqual([{ tokensIn: 31, tokensOut: 7, model: 'gpt-x' }]);
    });

    it(`an SSE answer in ${size}-byte chunks: passed on unchanged, usage from the final chunk`, async () => {
      const chunks = pieces(sse, size);
      const { out, usage } = await through('sse', chunks);
      expect(out.length).toBe(chunks.length);
      expect(Buffer.concat(out).toString('utf8')).toBe(sse);
      expect(usage).toEqual([{ tokensIn: 12, tokensOut: 5, model: 'gpt-s' }]);
    });
  }

  it('each chunk is handed on before the answer ends (nothing is held back)', async () => {
    const tap = usageTap('sse', () => undefined);
    const seen: string[] = [];
    tap.on('data', (c: Buffer) => seen.push(c.toString()));
    tap.write(Buffer.from('data: {"choices":[{"delta":{"content":"a"}}]}\n\n'));
    await new Promise((r) => setImmediate(r));
    expect(seen).toEqual(['data: {"choices":[{"delta":{"content":"a"}}]}\n\n']);
    tap.end();
  });

  it('an answer without usage, or not JSON, meters nothing', async () => {
    expect((await through('json', [Buffer.from('{"choices":[]}')])).usage).toEqual([]);
    expect((await through('json', [Buffer.from('<html>')])).usage).toEqual([]);
    expect((await through('sse', [Buffer.from('data: {"usage":null}\n\ndata: nonsense "usage"\n\ndata: [DONE]\n\n')])).usage).toEqual([]);
  });

  it('an SSE stream whose last line has no newline is still read', () => {
    const r = usageReader('sse');
    r.push(Buffer.from('data: {"usage":{"prompt_tokens":2,"completion_tokens":3}}'));
    expect(r.end()).toEqual({ tokensIn: 2, tokensOut: 3 });
  });

  it('a plain body past what is kept: usage found in its tail', () => {
    const r = usageReader('json');
    const filler = 'x'.repeat(1024 * 1024);
    r.push(Buffer.from(`{"choices":[{"message":{"content":"${filler}`));
    r.push(Buffer.from(filler));
    r.push(Buffer.from(`${filler}"}}],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}`));
    expect(r.end()).toEqual({ tokensIn: 9, tokensOut: 4 });
  });

  it('negative, fractional or absurd counts are read as 0', () => {
    const r = usageReader('json');
    r.push(Buffer.from('{"usage":{"prompt_tokens":-5,"completion_tokens":1.5}}'));
    expect(r.end()).toEqual({ tokensIn: 0, tokensOut: 0 });
  });
});

describe('usage periods', () => {
  it('a month is its first UTC instant; it resets at the next month', () => {
    const at = new Date('2026-12-31T23:59:59.999Z');
    expect(periodOf(at).toISOString()).toBe('2026-12-01T00:00:00.000Z');
    expect(resetsAt(at).toISOString()).toBe('2027-01-01T00:00:00.000Z');
  });
});
