import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ONE_WRITE_MAX, relayAnswer } from '../../api/chat-relay.ts';
import { usageReader, type Usage } from '../../api/usage-tap.ts';
import { currentPeriodKey, periodOf, resetsAt } from '../../core/services/usage.service.ts';

// The chat proxy relays an agent's answer and meters its `usage` on the way:
// the bytes must come out unchanged however the agent split them, SSE chunks
// must be passed on as they come, and an answer cut short must look cut short.
// Two loopback servers: an "agent" that answers as each test says, and a
// proxy in front of it that does what the chat route does with the answer.

/** `text` cut into pieces of `size` bytes (splitting lines, JSON and UTF-8 characters anywhere). */
function pieces(text: string, size: number): Buffer[] {
  const all = Buffer.from(text, 'utf8');
  const out: Buffer[] = [];
  for (let i = 0; i < all.length; i += size) out.push(all.subarray(i, i + size));
  return out;
}

type Script = (res: http.ServerResponse) => void | Promise<void>;
let script: Script = (res) => {
  res.end();
};
let metered: Usage[] = [];
/** Whether the agent saw its request closed before it finished answering. */
let agentSawClose: Promise<boolean> = Promise.resolve(false);
const agentServer = http.createServer((_req, res) => {
  agentSawClose = new Promise((resolve) => res.once('close', () => resolve(!res.writableFinished)));
  void script(res);
});
/** Resolved when the proxy sees its client leave. */
let clientLeft: () => void = () => undefined;
const proxyServer = http.createServer((req, res) => {
  res.once('close', () => clientLeft());
  const port = (agentServer.address() as AddressInfo).port;
  http.get({ host: '127.0.0.1', port, path: req.url }, (upstream) => relayAnswer(upstream, res, { onUsage: (u) => metered.push(u) }));
});
let proxyUrl = '';

beforeAll(async () => {
  await new Promise<void>((r) => agentServer.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => proxyServer.listen(0, '127.0.0.1', r));
  proxyUrl = `http://127.0.0.1:${(proxyServer.address() as AddressInfo).port}/`;
});
afterAll(async () => {
  proxyServer.closeAllConnections();
  agentServer.closeAllConnections();
  await new Promise((r) => proxyServer.close(r));
  await new Promise((r) => agentServer.close(r));
});

/** The agent writes `chunks` one per tick, with or without declaring the length. */
function answerWith(type: string, chunks: Buffer[], opts: { declareLength: boolean; status?: number }): Script {
  return async (res) => {
    const total = chunks.reduce((n, c) => n + c.length, 0);
    res.writeHead(opts.status ?? 200, { 'content-type': type, ...(opts.declareLength ? { 'content-length': total } : {}) });
    for (const c of chunks) {
      res.write(c);
      await new Promise((r) => setImmediate(r));
    }
    res.end();
  };
}

async function through(kind: 'json' | 'sse', chunks: Buffer[], declareLength = kind === 'json', status = 200) {
  metered = [];
  script = answerWith(kind === 'sse' ? 'text/event-stream' : 'application/json', chunks, { declareLength, status });
  const res = await fetch(proxyUrl);
  const text = await res.text();
  return { res, text, usage: metered };
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

describe('chat relay and usage meter', () => {
  for (const size of [1, 3, 17, 4096]) {
    for (const declareLength of [true, false]) {
      it(`a plain JSON answer in ${size}-byte chunks, length ${declareLength ? 'declared' : 'not declared'}: passed on unchanged, usage read`, async () => {
        const { res, text, usage } = await through('json', pieces(plain, size), declareLength);
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toBe('application/json');
        expect(text).toBe(plain);
        expect(usage).toEqual([{ tokensIn: 31, tokensOut: 7, model: 'gpt-x' }]);
      });
    }

    it(`an SSE answer in ${size}-byte chunks: passed on unchanged, usage from the final chunk`, async () => {
      const { res, text, usage } = await through('sse', pieces(sse, size));
      expect(res.headers.get('cache-control')).toBe('no-cache');
      expect(text).toBe(sse);
      expect(usage).toEqual([{ tokensIn: 12, tokensOut: 5, model: 'gpt-s' }]);
    });
  }

  it('a plain answer past the one-write size streams through unchanged', async () => {
    const big = JSON.stringify({ choices: [{ message: { content: 'y'.repeat(ONE_WRITE_MAX * 3) } }], usage: { prompt_tokens: 3, completion_tokens: 2 } });
    const { text, usage } = await through('json', pieces(big, 8192));
    expect(text).toBe(big);
    expect(usage).toEqual([{ tokensIn: 3, tokensOut: 2 }]);
  });

  it('each SSE chunk reaches the client before the answer ends (nothing is held back)', async () => {
    let finish!: () => void;
    const held = new Promise<void>((r) => (finish = r));
    script = async (res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {"choices":[{"delta":{"content":"a"}}]}\n\n');
      await held;
      res.end('data: [DONE]\n\n');
    };
    const res = await fetch(proxyUrl);
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(Buffer.from(first.value!).toString()).toBe('data: {"choices":[{"delta":{"content":"a"}}]}\n\n');
    finish();
    let rest = '';
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest += Buffer.from(r.value).toString();
    expect(rest).toBe('data: [DONE]\n\n');
  });

  it('an agent error is passed on as it is and meters nothing', async () => {
    const body = JSON.stringify({ error: { message: 'nope' }, usage: { prompt_tokens: 5, completion_tokens: 5 } });
    const { res, text, usage } = await through('json', [Buffer.from(body)], true, 400);
    expect(res.status).toBe(400);
    expect(text).toBe(body);
    expect(usage).toEqual([]);
  });

  for (const declareLength of [true, false]) {
    it(`an agent dying mid-answer (length ${declareLength ? 'declared' : 'not declared'}) cuts the client off and meters nothing`, async () => {
      metered = [];
      script = (res) => {
        res.writeHead(200, { 'content-type': 'application/json', ...(declareLength ? { 'content-length': 1000 } : {}) });
        res.write('{"usage":{"prompt_tokens":1,"completion_tokens":1}');
        setImmediate(() => res.destroy());
      };
      const outcome = await fetch(proxyUrl).then((r) => r.text()).then(() => 'complete', () => 'cut');
      expect(outcome).toBe('cut');
      expect(metered).toEqual([]);
    });
  }

  it('a client that leaves ends the request to the agent', async () => {
    script = (res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {}\n\n');
      // and never ends: only the client's leaving closes this
    };
    const controller = new AbortController();
    const res = await fetch(proxyUrl, { signal: controller.signal });
    await res.body!.getReader().read();
    controller.abort();
    expect(await agentSawClose).toBe(true);
  });

  it('a client that left before the agent answered: nothing is relayed and the agent is let go', async () => {
    let agentGotIt!: () => void;
    const received = new Promise<void>((r) => (agentGotIt = r));
    let answer!: () => void;
    const mayAnswer = new Promise<void>((r) => (answer = r));
    const left = new Promise<void>((r) => (clientLeft = r));
    script = async (res) => {
      agentGotIt();
      await mayAnswer;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {}\n\n');
      // and never ends: only the proxy letting go closes this
    };
    const controller = new AbortController();
    const outcome = fetch(proxyUrl, { signal: controller.signal }).then(() => 'answered', () => 'aborted');
    await received;
    controller.abort();
    await left;
    answer();
    expect(await outcome).toBe('aborted');
    expect(await agentSawClose).toBe(true);
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

  it('the cached current month follows the clock across a month end, both ways', () => {
    const end = Date.parse('2027-01-01T00:00:00.000Z');
    expect(currentPeriodKey(end - 1)).toBe('2026-12-01T00:00:00.000Z');
    expect(currentPeriodKey(end)).toBe('2027-01-01T00:00:00.000Z');
    expect(currentPeriodKey(end - 1)).toBe('2026-12-01T00:00:00.000Z');
    expect(currentPeriodKey()).toBe(periodOf().toISOString());
  });
});
