// The model side: which provider serves a model id, calling it with the
// user's key, falling back through the configured models, and turning the
// provider's answer into OpenAI chat-completion fields only. Nothing of a
// provider's body reaches the client but those fields, and redirects are
// never followed: a provider URL must not become a way to read whatever
// another address answers.
import { randomUUID } from 'node:crypto';

/** How long a provider may take to start answering before we try the next model. */
const HEADERS_TIMEOUT_MS = Number(process.env.UPSTREAM_HEADERS_TIMEOUT_MS ?? 120_000);

export class UpstreamError extends Error {
  constructor(status, code, message, upstreamStatus) {
    super(message);
    this.status = status;
    this.code = code;
    this.upstreamStatus = upstreamStatus;
  }
}

/**
 * "<provider>/<model>" picks that provider; anything else (no prefix, or a
 * prefix that is no provider's name, as in "meta-llama/llama-3") goes to the
 * first provider with the id unchanged.
 */
export function resolveModel(providers, id) {
  const slash = id.indexOf('/');
  if (slash > 0) {
    const name = id.slice(0, slash);
    // hasOwn: a model id must not reach Object.prototype ("constructor/x").
    if (Object.hasOwn(providers, name)) return { name, provider: providers[name], model: id.slice(slash + 1) };
  }
  const [first] = Object.keys(providers);
  return first ? { name: first, provider: providers[first], model: id } : null;
}

/** Every provider api but Anthropic's speaks OpenAI chat completions (Hangar's default api). */
const speaksOpenAI = (api) => !api || !/^anthropic/i.test(api);

/** Never echo a key back, even when a provider quotes it in an error. */
function redact(text, providers) {
  let out = text;
  for (const p of Object.values(providers)) {
    if (typeof p?.apiKey === 'string' && p.apiKey.length >= 4) out = out.split(p.apiKey).join('[redacted]');
  }
  return out;
}

const describe = (err) => err?.cause?.code ?? err?.cause?.message ?? err?.message ?? String(err);

/**
 * Sends the chat to the requested (or primary) model, then to each fallback
 * in order while the provider answers 5xx or cannot be reached. Resolves with
 * the first response that is not a 5xx (a 4xx is the provider's answer about
 * this request, not an outage, so it is returned for the caller to report).
 */
/** OpenClaw reads body.model as an agent target ("openclaw/default"), never a provider model. */
const isAgentTarget = (m) => typeof m === 'string' && /^(openclaw([/:].*)?|agent:.*)$/.test(m);

export async function callUpstream({ config, body, signal, log, personality = config.agents?.personality, modelOverride }) {
  const providers = config.models?.providers ?? {};
  const defaults = config.agents?.defaults?.model ?? {};
  // As in OpenClaw: x-openclaw-model picks the backend model; a plain model in the body still works.
  const requested = modelOverride ?? (isAgentTarget(body.model) ? undefined : body.model);
  const candidates = [...new Set([requested ?? defaults.primary, ...(defaults.fallbacks ?? [])])].filter(
    (m) => typeof m === 'string' && m.length > 0,
  );
  if (candidates.length === 0) throw new UpstreamError(400, 'no_model', 'No model requested and no primary model configured');
  const messages = personality ? [{ role: 'system', content: personality }, ...body.messages] : body.messages;

  const failures = [];
  let unsupported = 0;
  for (const id of candidates) {
    const target = resolveModel(providers, id);
    if (!target) {
      failures.push(`${id}: no provider configured`);
      continue;
    }
    if (!speaksOpenAI(target.provider.api)) {
      unsupported++;
      failures.push(`${id}: the reference agent does not support api "${target.provider.api}" yet`);
      continue;
    }
    if (!target.provider.baseUrl) {
      failures.push(`${id}: provider ${target.name} has no baseUrl`);
      continue;
    }
    const url = `${String(target.provider.baseUrl).replace(/\/+$/, '')}/chat/completions`;
    const headers = { 'content-type': 'application/json', accept: body.stream ? 'text/event-stream' : 'application/json' };
    if (target.provider.apiKey) headers.authorization = `Bearer ${target.provider.apiKey}`;
    // Aborts on client disconnect, or when no headers arrive in time.
    const attempt = new AbortController();
    const onClientAbort = () => attempt.abort(signal.reason);
    signal.addEventListener('abort', onClientAbort, { once: true });
    const timer = setTimeout(() => attempt.abort(new Error('provider did not answer in time')), HEADERS_TIMEOUT_MS);
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers,
        body: JSON.stringify({ ...body, model: target.model, messages }),
        signal: attempt.signal,
        redirect: 'manual',
      });
      if (res.status >= 300 && res.status < 400) {
        // Not followed, not read: the target of a redirect is none of the provider's business to show us.
        await res.body?.cancel().catch(() => undefined);
        failures.push(`${id}: provider answered a redirect (${res.status}), which is not followed`);
        log('model redirected, trying the next', { model: id, status: res.status });
        continue;
      }
      if (res.status >= 500) {
        await res.body?.cancel().catch(() => undefined);
        failures.push(`${id}: provider answered ${res.status}`);
        log('model failed, trying the next', { model: id, status: res.status });
        continue;
      }
      return { res, model: id, release: () => signal.removeEventListener('abort', onClientAbort) };
    } catch (err) {
      signal.removeEventListener('abort', onClientAbort);
      if (signal.aborted) throw err; // the client is gone: no point trying others
      failures.push(`${id}: ${describe(err)}`);
      log('model unreachable, trying the next', { model: id, error: describe(err) });
    } finally {
      clearTimeout(timer);
    }
  }
  if (unsupported === candidates.length) throw new UpstreamError(501, 'not_supported', failures.join('; '));
  throw new UpstreamError(502, 'upstream_error', redact(`No model answered: ${failures.join('; ')}`, providers));
}

/** A provider's non-2xx answer as our 502: its status only, never its body (which may quote a key or anything else). */
export async function upstreamFailure(res, model) {
  await res.body?.cancel().catch(() => undefined);
  return new UpstreamError(502, 'upstream_error', `${model}: provider answered ${res.status}`, res.status);
}

const str = (v, max = 200) => (typeof v === 'string' ? v.slice(0, max) : undefined);
const int = (v) => (Number.isSafeInteger(v) && v >= 0 ? v : undefined);

function cleanUsage(u) {
  if (!u || typeof u !== 'object') return undefined;
  const usage = { prompt_tokens: int(u.prompt_tokens), completion_tokens: int(u.completion_tokens), total_tokens: int(u.total_tokens) };
  return Object.values(usage).some((v) => v !== undefined) ? JSON.parse(JSON.stringify(usage)) : undefined;
}

const content = (v) => (typeof v === 'string' ? v : v === null ? null : undefined);

/** A plain answer reduced to OpenAI chat-completion fields; null when it is not a chat completion at all. */
export function cleanCompletion(answer, model) {
  if (!answer || typeof answer !== 'object' || !Array.isArray(answer.choices) || answer.choices.length === 0) return null;
  const usage = cleanUsage(answer.usage);
  return {
    id: str(answer.id) ?? `chatcmpl-${randomUUID()}`,
    object: 'chat.completion',
    created: int(answer.created) ?? Math.floor(Date.now() / 1000),
    model: str(answer.model) ?? model,
    choices: answer.choices.slice(0, 16).map((c, i) => ({
      index: int(c?.index) ?? i,
      message: { role: 'assistant', content: content(c?.message?.content) ?? null },
      finish_reason: str(c?.finish_reason, 64) ?? null,
    })),
    ...(usage ? { usage } : {}),
  };
}

/** One streamed chunk reduced the same way; null for anything that is not a chat-completion chunk. */
export function cleanChunk(chunk, model) {
  if (!chunk || typeof chunk !== 'object' || !Array.isArray(chunk.choices)) return null;
  const usage = cleanUsage(chunk.usage);
  return {
    id: str(chunk.id) ?? 'chatcmpl',
    object: 'chat.completion.chunk',
    created: int(chunk.created) ?? Math.floor(Date.now() / 1000),
    model: str(chunk.model) ?? model,
    choices: chunk.choices.slice(0, 16).map((c, i) => {
      const delta = {};
      if (c?.delta?.role === 'assistant') delta.role = 'assistant';
      const text = content(c?.delta?.content);
      if (text !== undefined) delta.content = text;
      return { index: int(c?.index) ?? i, delta, finish_reason: str(c?.finish_reason, 64) ?? null };
    }),
    ...(usage ? { usage } : {}),
  };
}

/**
 * Rewrites a provider's SSE bytes into well-formed `data:` events of cleaned
 * chunks (and the final `data: [DONE]`), collecting the assistant's text on
 * the way. Comments, other event fields and anything unparseable are
 * dropped. Chunks split lines anywhere, so a partial line waits for the rest.
 */
export function sseCleaner(model) {
  const decoder = new TextDecoder();
  let pending = '';
  let text = '';
  const take = (line) => {
    if (!line.startsWith('data:')) return '';
    const data = line.slice(5).trim();
    if (data === '[DONE]') return 'data: [DONE]\n\n';
    let chunk;
    try {
      chunk = cleanChunk(JSON.parse(data), model);
    } catch {
      return '';
    }
    if (!chunk) return '';
    for (const c of chunk.choices) if (c.index === 0 && typeof c.delta.content === 'string') text += c.delta.content;
    return `data: ${JSON.stringify(chunk)}\n\n`;
  };
  return {
    /** The cleaned events these bytes complete ('' when none yet). */
    push(bytes) {
      pending += decoder.decode(bytes, { stream: true });
      const lines = pending.split(/\r?\n/);
      pending = lines.pop();
      return lines.map(take).join('');
    },
    /** Whatever the last, unterminated line completes. */
    end() {
      const out = take(pending + decoder.decode());
      pending = '';
      return out;
    },
    text: () => text,
  };
}
