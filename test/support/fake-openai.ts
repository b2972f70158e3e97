import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SeenRequest {
  path: string;
  authorization: string | undefined;
  body: { model?: string; messages?: Array<{ role: string; content: unknown }>; stream?: boolean } | null;
}

/** A message's text, whether a string or OpenAI's array of typed parts. */
export function messageText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p) => (typeof p?.text === 'string' ? p.text : '')).join('');
  return '';
}

const OPENCLAW_CONTEXT = '<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>';

/**
 * What the user said in this turn. The reference agent passes messages on
 * as sent; OpenClaw stamps the user's turn ("[Thu 2026-11-26 00:07 UTC] …"),
 * appends a "Runtime: …" line, and adds its own context as further user
 * messages — those are skipped and the stamps stripped.
 */
export function userWords(messages: Array<{ role: string; content: unknown }> = []): string {
  const own = [...messages].reverse().find((m) => m.role === 'user' && !messageText(m.content).includes(OPENCLAW_CONTEXT));
  return messageText(own?.content)
    .replace(/^\[[^\]\n]*\d{2}:\d{2}[^\]\n]*\]\s*/, '')
    .replace(/\n+Runtime: [^\n]*$/, '')
    .trim();
}

/** The system prompt the upstream got (OpenClaw's includes the workspace's SOUL.md). */
export function systemPrompt(body: SeenRequest['body']): string {
  return (body?.messages ?? []).filter((m) => m.role === 'system').map((m) => messageText(m.content)).join('\n');
}

/**
 * An OpenAI-compatible upstream on this machine. It answers with the last
 * user message echoed, so a test can tell whose words came back; streamed
 * answers arrive in several SSE chunks with a pause between them. Each
 * answer reports `usage` (1 token in, 1 out unless told otherwise).
 */
export async function startFakeOpenAI(opts: { chunkDelayMs?: number; usage?: { prompt_tokens: number; completion_tokens: number } } = {}) {
  const seen: SeenRequest[] = [];
  // Every answer reports its tokens as OpenAI does: in the body, or in the last streamed chunk.
  const { prompt_tokens, completion_tokens } = opts.usage ?? { prompt_tokens: 1, completion_tokens: 1 };
  const usage = { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens };
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', async () => {
      const body = raw ? JSON.parse(raw) : null;
      seen.push({ path: req.url ?? '', authorization: req.headers.authorization, body });
      if (req.url === '/v1/models') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ object: 'list', data: [{ id: 'fake-model', object: 'model' }] }));
      }
      if (req.url !== '/v1/chat/completions' || req.method !== 'POST') {
        res.writeHead(404).end();
        return;
      }
      const answer = `echo: ${userWords(body?.messages)}`;
      if (body?.stream) {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        const words = answer.split(' ');
        for (const [i, w] of words.entries()) {
          const chunk = { id: 'c1', object: 'chat.completion.chunk', model: body.model, choices: [{ index: 0, delta: { content: (i ? ' ' : '') + w } }] };
          res.write(`data: ${JSON.stringify(chunk)}\n\n`);
          await new Promise((r) => setTimeout(r, opts.chunkDelayMs ?? 30));
        }
        const done = { id: 'c1', object: 'chat.completion.chunk', model: body.model, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], usage };
        res.write(`data: ${JSON.stringify(done)}\n\n`);
        res.write('data: [DONE]\n\n');
        return res.end();
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        id: 'c1',
        object: 'chat.completion',
        model: body?.model,
        choices: [{ index: 0, message: { role: 'assistant', content: answer }, finish_reason: 'stop' }],
        usage,
      }));
    });
  });
  // All interfaces: agent containers reach it through host.docker.internal (the bridge gateway).
  await new Promise<void>((r) => server.listen(0, '0.0.0.0', r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    seen,
    /** The base URL as an agent container sees it. */
    agentBaseUrl: `http://host.docker.internal:${port}/v1`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
