import type http from 'node:http';
import { usageReader, type Usage } from './usage-tap.ts';

// The last leg of the chat proxy: the agent's answer onto the client's socket.
// It runs once per chat, so it is written for the fewest objects and system
// calls per answer (measured by `npm run bench`, the proxy's CPU per request):
//  - a plain answer whose length the agent declares, up to ONE_WRITE_MAX, goes
//    out with its headers in one write (a client can do nothing with half a
//    JSON document, and it saves the chunked framing's extra writes);
//  - anything else (server-sent events, long or unsized answers) is passed on
//    chunk by chunk as it arrives, with backpressure, never held back;
//  - no stream.pipeline (each one makes an AbortController, and a DOMException
//    when it finishes), no Transform: the usage reader is fed the same chunks.
// An answer that does not arrive whole is never metered and is cut on the
// client's side too (the socket is destroyed): a truncated answer must not
// look complete. A client that leaves ends the request to the agent.

/** Plain answers up to this size are sent in one write; larger ones stream. */
export const ONE_WRITE_MAX = 64 * 1024;

export interface RelayOptions {
  /** Called once with the answer's token usage when a successful answer has arrived whole and carried one. */
  onUsage: (usage: Usage) => void;
}

const metered = (u: Usage | null): u is Usage => u !== null && (u.tokensIn > 0 || u.tokensOut > 0);

export function relayAnswer(upstream: http.IncomingMessage, res: http.ServerResponse, opts: RelayOptions): void {
  // The client left while the agent was thinking: its 'close' has been and
  // gone, so nothing below would ever let the agent's answer go.
  if (res.destroyed || !res.socket || res.socket.destroyed) {
    upstream.destroy();
    return;
  }
  const status = upstream.statusCode ?? 502;
  const type = upstream.headers['content-type'] ?? 'application/json';
  const sse = type.includes('text/event-stream');
  const length = sse ? NaN : Number(upstream.headers['content-length']);
  // Errors are the agent's words, passed on as they are, and never metered.
  const meter = status < 400;
  const head: Record<string, string | number> = { 'content-type': type };
  if (sse) {
    head['cache-control'] = 'no-cache';
    head['x-accel-buffering'] = 'no';
  }

  // Whichever side ends first ends the other: a client that leaves stops the
  // agent's work, an agent that dies mid-answer cuts the client off.
  res.once('close', () => {
    if (!upstream.complete) upstream.destroy();
  });
  upstream.once('error', () => res.destroy());
  upstream.once('close', () => {
    if (!upstream.complete) res.destroy();
  });

  // One reader for both paths: it keeps what the usage needs and parses it at the end.
  const reader = meter ? usageReader(sse ? 'sse' : 'json') : null;
  const finish = () => {
    const usage = reader?.end() ?? null;
    if (metered(usage)) opts.onUsage(usage);
  };

  if (Number.isSafeInteger(length) && length >= 0 && length <= ONE_WRITE_MAX) {
    const chunks: Buffer[] = [];
    let size = 0;
    upstream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // An agent sending more than it declared is cut off, not believed.
      if (size > length) upstream.destroy();
      else chunks.push(chunk);
    });
    upstream.once('end', () => {
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
      reader?.push(body);
      finish();
      head['content-length'] = body.length;
      res.writeHead(status, head);
      res.end(body);
    });
    return;
  }

  if (!sse && Number.isSafeInteger(length) && length >= 0) head['content-length'] = length;
  res.writeHead(status, head);
  upstream.on('data', (chunk: Buffer) => {
    reader?.push(chunk);
    if (!res.write(chunk)) {
      upstream.pause();
      res.once('drain', () => upstream.resume());
    }
  });
  upstream.once('end', () => {
    res.end();
    finish();
  });
}
