// Reads an answer's token `usage` while the answer passes through the chat
// proxy (api/chat-relay.ts), never holding it back: the relay hands every
// chunk on the moment it arrives and shows it to this reader, which keeps
// only what the usage needs on the side.
// - Plain JSON: a copy of the body up to PLAIN_KEEP bytes, parsed at the end
//   (past that, only the last TAIL bytes, where `usage` sits, searched for it).
// - SSE: the current partial line only; a complete `data:` line that mentions
//   "usage" is parsed and a non-null usage kept (OpenAI puts it in the last chunk).

export interface Usage {
  tokensIn: number;
  tokensOut: number;
  /** The model the answer names, when it names one. */
  model?: string;
}

const PLAIN_KEEP = 2 * 1024 * 1024;
const TAIL = 16 * 1024;
/** An SSE line longer than this is not a usage chunk: it is dropped, not kept. */
const LINE_MAX = 256 * 1024;

const count = (v: unknown) => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : 0);

/** `usage` of a parsed answer or chunk; null when it carries none. */
export function usageOf(answer: unknown): Usage | null {
  if (!answer || typeof answer !== 'object') return null;
  const { usage, model } = answer as { usage?: { prompt_tokens?: unknown; completion_tokens?: unknown } | null; model?: unknown };
  if (!usage || typeof usage !== 'object') return null;
  return { tokensIn: count(usage.prompt_tokens), tokensOut: count(usage.completion_tokens), ...(typeof model === 'string' && model ? { model: model.slice(0, 200) } : {}) };
}

/** A body too long to keep: the usage numbers from its tail, found by name. */
function usageFromTail(tail: string): Usage | null {
  const at = tail.lastIndexOf('"usage"');
  if (at < 0) return null;
  const rest = tail.slice(at);
  const num = (name: string) => Number(new RegExp(`"${name}"\\s*:\\s*(\\d+)`).exec(rest)?.[1] ?? 0);
  return { tokensIn: count(num('prompt_tokens')), tokensOut: count(num('completion_tokens')) };
}

/** A byte-level observer of one answer; `end()` gives its usage (null when none was seen). */
export function usageReader(kind: 'json' | 'sse') {
  const decoder = new TextDecoder();
  let kept: Buffer[] = [];
  let keptBytes = 0;
  let tail = '';
  let overflow = false;
  let line = '';
  let found: Usage | null = null;

  function takeLine(l: string) {
    if (!l.startsWith('data:') || !l.includes('"usage"')) return;
    try {
      found = usageOf(JSON.parse(l.slice(5))) ?? found;
    } catch {
      // not JSON: the agent's business, not the meter's
    }
  }

  return {
    push(chunk: Buffer) {
      if (kind === 'json') {
        if (!overflow && keptBytes + chunk.length <= PLAIN_KEEP) {
          kept.push(chunk);
          keptBytes += chunk.length;
          return;
        }
        if (!overflow) {
          overflow = true;
          tail = Buffer.concat(kept).toString('utf8').slice(-TAIL);
          kept = [];
        }
        tail = (tail + chunk.toString('utf8')).slice(-TAIL);
        return;
      }
      const text = line + decoder.decode(chunk, { stream: true });
      const lines = text.split('\n');
      line = lines.pop() ?? '';
      if (line.length > LINE_MAX) line = '';
      for (const l of lines) takeLine(l.replace(/\r$/, ''));
    },
    end(): Usage | null {
      if (kind === 'json') {
        if (overflow) return usageFromTail(tail);
        try {
          return usageOf(JSON.parse(Buffer.concat(kept).toString('utf8')));
        } catch {
          return null;
        }
      }
      takeLine((line + decoder.decode()).replace(/\r$/, ''));
      return found;
    },
  };
}
