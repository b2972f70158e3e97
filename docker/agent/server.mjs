// Hangar's reference agent: Node built-ins only. At boot it fetches its config
// from Hangar with its gateway token (and exits if refused), then answers
// OpenAI-style chat by forwarding to the user's provider, keeping history in
// its own /data volume. Only Hangar's proxy, holding the token, can call it.
import { createHash, timingSafeEqual } from 'node:crypto';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';

const PORT = Number(process.env.PORT ?? 18789);
const DATA_DIR = process.env.DATA_DIR ?? '/data';
const CONFIG_URL = process.env.HANGAR_CONFIG_URL;
const TOKEN = process.env.HANGAR_GATEWAY_TOKEN ?? '';
const HISTORY_LIMIT = 200;

const log = (msg, extra = {}) => console.log(JSON.stringify({ at: new Date().toISOString(), msg, ...extra }));
const changelog = JSON.parse(await readFile(new URL('./changelog.json', import.meta.url), 'utf8').catch(() => '{"version":"dev","changes":[]}'));

async function fetchConfig() {
  if (!CONFIG_URL || !TOKEN) {
    log('HANGAR_CONFIG_URL and HANGAR_GATEWAY_TOKEN are required');
    process.exit(1);
  }
  for (let attempt = 1; attempt <= 20; attempt++) {
    try {
      const res = await fetch(CONFIG_URL, { headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(5000) });
      if (res.ok) return await res.json();
      if ([401, 403, 404].includes(res.status)) {
        log('config refused by Hangar; not serving without config', { status: res.status });
        process.exit(1);
      }
      log('config fetch failed; retrying', { status: res.status, attempt });
    } catch (err) {
      log('config endpoint unreachable; retrying', { error: err.cause?.code ?? err.message, attempt });
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  log('gave up fetching config');
  process.exit(1);
}

const config = await fetchConfig();
const providers = config.models?.providers ?? {};
const defaults = config.agents?.defaults?.model ?? {};

function resolveModel(id) {
  const names = Object.keys(providers);
  if (!id) return null;
  const slash = id.indexOf('/');
  if (slash > 0 && providers[id.slice(0, slash)]) return { provider: providers[id.slice(0, slash)], model: id.slice(slash + 1) };
  return names.length ? { provider: providers[names[0]], model: id } : null;
}

function authorized(req) {
  const header = req.headers.authorization ?? '';
  const given = createHash('sha256').update(header.startsWith('Bearer ') ? header.slice(7) : '').digest();
  return timingSafeEqual(given, createHash('sha256').update(TOKEN).digest());
}

const send = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};
const error = (res, status, code, message) => send(res, status, { error: { code, message } });

async function readBody(req, limit = 8 * 1024 * 1024) {
  let size = 0;
  const chunks = [];
  for await (const c of req) {
    size += c.length;
    if (size > limit) throw Object.assign(new Error('body too large'), { status: 413 });
    chunks.push(c);
  }
  return chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {};
}

const sessionFile = (id) => path.join(DATA_DIR, 'sessions', `${id}.jsonl`);

async function remember(sessionId, entry) {
  await mkdir(path.join(DATA_DIR, 'sessions'), { recursive: true });
  await appendFile(sessionFile(sessionId), `${JSON.stringify(entry)}\n`);
}

async function sessions() {
  const { readdir } = await import('node:fs/promises');
  const files = await readdir(path.join(DATA_DIR, 'sessions')).catch(() => []);
  const out = [];
  for (const f of files.filter((f) => f.endsWith('.jsonl'))) {
    const lines = (await readFile(sessionFile(f.slice(0, -6)), 'utf8')).trim().split('\n').filter(Boolean);
    out.push({ id: f.slice(0, -6), messages: lines.slice(-HISTORY_LIMIT).map((l) => JSON.parse(l)) });
  }
  return out;
}

/** Tries the requested (or primary) model, then each fallback, on 5xx or connection failure. */
async function callUpstream(body) {
  const candidates = [body.model ?? defaults.primary, ...(body.model ? [] : defaults.fallbacks ?? [])].filter(Boolean);
  if (candidates.length === 0) throw Object.assign(new Error('no model configured'), { status: 400, code: 'no_model' });
  let lastError = 'no provider answered';
  for (const id of candidates) {
    const target = resolveModel(id);
    if (!target) {
      lastError = `no provider for model ${id}`;
      continue;
    }
    if (target.provider.api === 'anthropic-messages') {
      throw Object.assign(new Error('anthropic providers are not supported by the reference agent yet'), { status: 501, code: 'not_supported' });
    }
    const messages = config.agents?.personality ? [{ role: 'system', content: config.agents.personality }, ...body.messages] : body.messages;
    try {
      const res = await fetch(`${target.provider.baseUrl.replace(/\/$/, '')}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(target.provider.apiKey ? { authorization: `Bearer ${target.provider.apiKey}` } : {}) },
        body: JSON.stringify({ ...body, messages, model: target.model }),
      });
      if (res.status >= 500) {
        lastError = `upstream answered ${res.status}`;
        await res.body?.cancel();
        continue;
      }
      return { res, model: id };
    } catch (err) {
      lastError = err.cause?.code ?? err.message;
    }
  }
  throw Object.assign(new Error(lastError), { status: 502, code: 'upstream_error' });
}

async function chat(req, res) {
  const body = await readBody(req);
  if (!Array.isArray(body.messages) || body.messages.length === 0) return error(res, 400, 'invalid_input', 'messages is required');
  const rawSession = String(req.headers['x-hangar-session-id'] ?? 'default');
  const sessionId = /^[A-Za-z0-9_-]{1,64}$/.test(rawSession) ? rawSession : 'default';
  const { res: up, model } = await callUpstream(body);
  const asked = body.messages.filter((m) => m.role === 'user').slice(-1);
  if (!up.ok) {
    return error(res, 502, 'upstream_error', `provider answered ${up.status}: ${(await up.text()).slice(0, 300)}`);
  }
  if (body.stream) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    let text = '';
    let pending = '';
    const decoder = new TextDecoder();
    for await (const chunk of up.body) {
      res.write(chunk);
      pending += decoder.decode(chunk, { stream: true });
      const lines = pending.split('\n');
      pending = lines.pop();
      for (const line of lines) {
        if (!line.startsWith('data: ') || line.includes('[DONE]')) continue;
        try {
          text += JSON.parse(line.slice(6)).choices?.[0]?.delta?.content ?? '';
        } catch {
          /* a partial or foreign line: the client still gets it verbatim */
        }
      }
    }
    res.end();
    await remember(sessionId, { at: new Date().toISOString(), model, user: asked, assistant: text });
    return;
  }
  const answer = await up.json();
  send(res, 200, answer);
  await remember(sessionId, { at: new Date().toISOString(), model, user: asked, assistant: answer.choices?.[0]?.message?.content ?? '' });
}

const server = http.createServer(async (req, res) => {
  const started = Date.now();
  res.on('finish', () => log('request', { method: req.method, path: req.url, status: res.statusCode, ms: Date.now() - started }));
  try {
    if (req.method === 'GET' && req.url === '/health') return send(res, 200, { status: 'ok', version: changelog.version });
    if (!authorized(req)) return error(res, 401, 'unauthorized', 'gateway token required');
    if (req.method === 'POST' && req.url === '/v1/chat/completions') return await chat(req, res);
    if (req.method === 'GET' && req.url === '/v1/sessions') return send(res, 200, { sessions: await sessions() });
    if (req.method === 'GET' && req.url === '/v1/info') return send(res, 200, { version: changelog.version, changelog });
    return error(res, 404, 'not_found', 'no such route');
  } catch (err) {
    if (res.headersSent) return res.end();
    if (err instanceof SyntaxError) return error(res, 400, 'invalid_json', 'body is not JSON');
    return error(res, err.status ?? 500, err.code ?? 'agent_error', err.message);
  }
});

server.listen(PORT, '0.0.0.0', () => log('agent ready', { port: PORT, version: changelog.version, providers: Object.keys(providers) }));
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.once(sig, () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  });
}
