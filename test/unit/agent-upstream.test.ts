import { describe, expect, it } from 'vitest';
// @ts-expect-error: the reference agent is plain JavaScript (Node built-ins only), without type declarations
import { cleanCompletion, sseCleaner, upstreamFailure } from '../../docker/agent/upstream.mjs';

// The reference agent passes on OpenAI chat-completion fields only: whatever
// else a provider (or whatever a provider URL points at) answers stays out.

const enc = new TextEncoder();

describe('reference agent: what reaches the client', () => {
  it('a plain answer keeps only OpenAI chat-completion fields', () => {
    const upstream = {
      id: 'c1', object: 'chat.completion', created: 1700000000, model: 'm',
      choices: [{ index: 0, message: { role: 'assistant', content: 'hi', secret: 'x' }, finish_reason: 'stop', logprobs: { leak: 1 } }],
      usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4, cost: 'leak' },
      Code: 'Success', AccessKeyId: 'AKIA-LEAK', SecretAccessKey: 'leak',
    };
    expect(cleanCompletion(upstream, 'openai/m')).toEqual({
      id: 'c1', object: 'chat.completion', created: 1700000000, model: 'm',
      choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
    });
  });

  it('anything that is not a chat completion is refused, not passed on', () => {
    for (const body of [null, 'text', { Code: 'Success', Token: 'leak' }, { choices: [] }, { choices: 'x' }]) {
      expect(cleanCompletion(body, 'm')).toBeNull();
    }
  });

  it('a stream becomes well-formed data: events of cleaned chunks, split anywhere', () => {
    const raw = [
      ': a comment\n',
      'event: foo\n',
      `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'm', choices: [{ index: 0, delta: { role: 'assistant', content: 'he', extra: 'leak' } }], leak: 'x' })}\n\n`,
      'data: not json at all, e.g. a metadata body\n\n',
      `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: 'llo' }, finish_reason: 'stop' }] })}\n\n`,
      'data: [DONE]\n\n',
    ].join('');
    const cleaner = sseCleaner('openai/m');
    const bytes = enc.encode(raw);
    let out = '';
    for (let i = 0; i < bytes.length; i += 7) out += cleaner.push(bytes.slice(i, i + 7));
    out += cleaner.end();
    const events = out.split('\n\n').filter(Boolean);
    expect(events.every((e) => e.startsWith('data: '))).toBe(true);
    expect(events.at(-1)).toBe('data: [DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)));
    expect(chunks).toHaveLength(2);
    expect(chunks[0]).toMatchObject({ id: 'c1', object: 'chat.completion.chunk', model: 'm', choices: [{ index: 0, delta: { role: 'assistant', content: 'he' }, finish_reason: null }] });
    expect(chunks[1]).toMatchObject({ object: 'chat.completion.chunk', model: 'openai/m', choices: [{ index: 0, delta: { content: 'llo' }, finish_reason: 'stop' }] });
    expect(out).not.toContain('leak');
    expect(out).not.toContain('metadata');
    expect(cleaner.text()).toBe('hello');
  });

  it('a provider error carries its status, never its body', async () => {
    const res = new Response(JSON.stringify({ error: { message: 'Incorrect API key provided: sk-secret' } }), { status: 401 });
    const err = await upstreamFailure(res, 'openai/m');
    expect(err).toMatchObject({ status: 502, code: 'upstream_error', upstreamStatus: 401, message: 'openai/m: provider answered 401' });
  });
});
