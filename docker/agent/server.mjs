// Hangar's reference agent, Node built-ins only. At boot it fetches its config
// from Hangar with the single-use bootstrap token in its environment and exits
// if refused (it never serves without config); the config carries this
// start's gateway token (gateway.auth.token). Then it answers OpenAI-style
// chat by forwarding to the user's provider, keeping capped history in its own
// /data volume. Every route but /health needs the gateway token, which only
// Hangar's proxy holds: the token `docker inspect` shows is spent by then.
import { createHash, timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { capsFromEnv, createHistory, sessionIdFrom, userTurn } from './history.mjs';
import { createMembers, MemberInputError } from './members.mjs';
import { UpstreamError, callUpstream, cleanCompletion, sseCleaner, upstreamFailure } from './upstream.mjs';

const PORT = Number(process.env.PORT || 18789);
const DATA_DIR = process.env.DATA_DIR || '/data';
const CONFIG_URL = process.env.HANGAR_CONFIG_URL;
/** The bootstrap token: good for one config fetch, this start only (the env var keeps its historical name). */
const BOOTSTRAP_TOKEN = process.env.HANGAR_GATEWAY_TOKEN ?? '';
/** Connection errors at boot are retried this long (Hangar may be restarting). */
const CONFIG_RETRY_MS = 10_000;
const BODY_LIMIT = 8 * 1024 * 1024;

const log = (msg, fields = {}) => console.log(JSON.stringify({ at: new Date().toISOString(), msg, ...fields }));
const fatal = (msg, fields) => {
  log(msg, { ...fields, fatal: true });
  process.exit(1);
};

let server;
// Installed first: as PID 1 without a handler, SIGTERM would be ignored
// during the boot retries and Docker would wait out its kill timeout.
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.once(sig, () => {
    log('shutting down', { signal: sig });
    server?.close();
    server?.closeAllConnections();
    process.exit(0);
  });
}

const changelog = JSON.parse(
  await readFile(new URL('./changelog.json', import.meta.url), 'utf8').catch(() => '{"version":"dev","changes":[]}'),
);
const VERSION = process.env.AGENT_VERSION || changelog.version;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const describe = (err) => err?.cause?.code ?? err?.cause?.message ?? err?.message ?? String(err);

async function loadConfig() {
  if (!CONFIG_URL || !BOOTSTRAP_TOKEN) fatal('HANGAR_CONFIG_URL and HANGAR_GATEWAY_TOKEN must both be set');
  const deadline = Date.now() + CONFIG_RETRY_MS;
  for (let attempt = 1; ; attempt++) {
    let res;
    try {
      res = await fetch(CONFIG_URL, {
        headers: { authorization: `Bearer ${BOOTSTRAP_TOKEN}`, accept: 'application/json' },
        signal: AbortSignal.timeout(3000),
      });
    } catch (err) {
      // Only a connection failure is worth retrying; any HTTP answer is final.
      const wait = Math.min(250 * 2 ** (attempt - 1), 2000);
      if (Date.now() + wait > deadline) fatal('cannot reach Hangar for config; giving up', { error: describe(err), attempts: attempt });
      log('cannot reach Hangar for config; retrying', { error: describe(err), attempt });
      await sleep(wait);
      continue;
    }
    if ([401, 403, 404].includes(res.status)) {
      fatal(`Hangar refused this agent's config (HTTP ${res.status}): bootstrap token wrong, expired or already used, or unknown agent; not serving without config`);
    }
    if (!res.ok) fatal(`Hangar's config endpoint answered HTTP ${res.status}; not serving without config`);
    let config;
    try {
      config = await res.json();
    } catch {
      fatal("Hangar's config endpoint answered something that is not JSON");
    }
    if (!config || typeof config !== 'object' || (config.models?.providers != null && typeof config.models.providers !== 'object')) {
      fatal('config has an unexpected shape (models.providers must be an object)');
    }
    if (typeof config.gateway?.auth?.token !== 'string' || config.gateway.auth.token.length < 16) {
      fatal('config carries no gateway token (gateway.auth.token); not serving without one');
    }
    return config;
  }
}

/**
 * The personality, from the workspace files Hangar hands OpenClaw (SOUL.md).
 * An older Hangar without that endpoint (404) means none.
 */
async function loadPersonality(gatewayToken) {
  let res;
  try {
    // The bootstrap token is spent by now: this start's gateway token asks.
    res = await fetch(`${CONFIG_URL}/workspace`, { headers: { authorization: `Bearer ${gatewayToken}` }, signal: AbortSignal.timeout(3000) });
  } catch (err) {
    fatal('cannot reach Hangar for the workspace files', { error: describe(err) });
  }
  if (res.status === 404) return undefined;
  if (!res.ok) fatal(`Hangar's workspace endpoint answered HTTP ${res.status}; not serving without it`);
  const soul = (await res.json().catch(() => ({})))?.files?.['SOUL.md'];
  if (typeof soul !== 'string') return undefined;
  // Hangar's marker line is for the file on disk, not for the model.
  return soul.replace(/^<!--[^\n]*-->\s*/, '').trim() || undefined;
}

const config = await loadConfig();
const personality = (await loadPersonality(config.gateway.auth.token)) ?? config.agents?.personality;
const providers = config.models?.providers ?? {};
const historyCaps = capsFromEnv(process.env);
const history = createHistory(DATA_DIR, historyCaps, log);
const members = await createMembers(DATA_DIR, log);

/** Hashing both sides gives equal lengths, so the compare is constant-time. */
const digest = (s) => createHash('sha256').update(s).digest();
const TOKEN_DIGEST = digest(config.gateway.auth.token);
function authorized(req) {
  const match = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
  return timingSafeEqual(digest(match ? match[1].trim() : ''), TOKEN_DIGEST);
}

function sendJson(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}
const sendError = (res, status, code, message, extra = {}) => sendJson(res, status, { error: { code, message, ...extra } });

class BadRequest extends Error {}

async function readJson(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > BODY_LIMIT) throw Object.assign(new BadRequest('body too large'), { status: 413 });
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
  } catch {
    throw new BadRequest('body is not JSON');
  }
}

function validateChat(body) {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new BadRequest('body must be a JSON object');
  const { messages, model, stream } = body;
  if (!Array.isArray(messages) || messages.length === 0) throw new BadRequest('messages must be a non-empty array');
  if (!messages.every((m) => m && typeof m === 'object' && typeof m.role === 'string' && m.content != null)) {
    throw new BadRequest('every message needs a role and content');
  }
  if (model != null && (typeof model !== 'string' || model.length === 0)) throw new BadRequest('model must be a string');
  if (stream != null && typeof stream !== 'boolean') throw new BadRequest('stream must be a boolean');
}

const decoded = (v) => {
  try {
    return typeof v === 'string' ? decodeURIComponent(v) || undefined : undefined;
  } catch {
    return undefined;
  }
};

/** Who asked, as Hangar's proxy says (it builds these headers itself and never passes on a client's). */
function caller(req) {
  const id = req.headers['x-hangar-user-id'];
  if (typeof id !== 'string' || !id) return undefined;
  const name = decoded(req.headers['x-hangar-user-name']);
  const email = decoded(req.headers['x-hangar-user-email']);
  const role = req.headers['x-hangar-user-role'];
  return { id, ...(name ? { name } : {}), ...(email ? { email } : {}), ...(typeof role === 'string' && role ? { role } : {}) };
}

/**
 * A workspace agent serves several people: the model is told who is talking
 * now (and who the members are), from Hangar's headers. A user's own agent
 * (no role header) gets nothing extra.
 */
function speakerContext(by) {
  if (!by?.role) return undefined;
  const who = `${by.name ?? by.id}${by.email ? ` <${by.email}>` : ''}`;
  const team = members.list().slice(0, 50).map((m) => `${m.displayName} (${m.role})`);
  return [
    `You are the shared agent of a workspace. The person talking to you now is ${who}, ${by.role} of the workspace (Hangar user ${by.id}).`,
    team.length ? `The workspace's members: ${team.join(', ')}.` : '',
  ].filter(Boolean).join(' ');
}

async function remember(req, body, model, answer) {
  const sessionId = sessionIdFrom(req.headers['x-openclaw-session-key'], req.headers['x-hangar-session-id']);
  const by = caller(req);
  const entry = { at: new Date().toISOString(), model, user: userTurn(body.messages), assistant: answer, ...(by ? { by } : {}) };
  // Written before the answer ends, so a history read right after sees it; a
  // full disk costs history, not the reply.
  await history.append(sessionId, entry).catch((err) => log('could not write history', { sessionId, error: err.code ?? err.message }));
}

async function chat(req, res) {
  const body = await readJson(req);
  validateChat(body);
  const clientGone = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) clientGone.abort(new Error('client went away'));
  });
  const override = req.headers['x-openclaw-model'];
  const { res: up, model, release } = await callUpstream({
    config,
    body,
    signal: clientGone.signal,
    log,
    personality: [personality, speakerContext(caller(req))].filter(Boolean).join('\n\n') || undefined,
    modelOverride: typeof override === 'string' && override ? override : undefined,
  });
  try {
    if (!up.ok) throw await upstreamFailure(up, model);
    const isStream = body.stream === true && (up.headers.get('content-type') ?? '').includes('text/event-stream');
    if (isStream) {
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        'x-accel-buffering': 'no',
        'x-hangar-model': model,
      });
      res.flushHeaders();
      const cleaner = sseCleaner(model);
      // Each upstream chunk is cleaned and written as it arrives; pipeline
      // handles backpressure and cancels the upstream if the client disconnects.
      const clean = new Transform({
        transform(chunk, _enc, done) {
          const out = cleaner.push(chunk);
          done(null, out || undefined);
        },
        flush(done) {
          const out = cleaner.end();
          done(null, out || undefined);
        },
      });
      // The response stays open until the exchange is in the history: a read
      // right after the last chunk sees it.
      await pipeline(Readable.fromWeb(up.body), clean, res, { end: false });
      await remember(req, body, model, cleaner.text());
      res.end();
      return;
    }
    // Non-stream (or a provider that ignored stream: true): OpenAI fields only.
    const raw = await up.text();
    let answer = null;
    try {
      answer = cleanCompletion(JSON.parse(raw), model);
    } catch {
      // not JSON: reported below without quoting it
    }
    if (!answer) throw new UpstreamError(502, 'upstream_error', `${model}: provider answered ${up.status} with something that is not a chat completion`);
    await remember(req, body, model, answer.choices[0]?.message?.content ?? '');
    res.setHeader('x-hangar-model', model);
    sendJson(res, 200, answer);
  } finally {
    release();
  }
}

/**
 * The two session tools of OpenClaw's POST /tools/invoke that Hangar reads
 * history with, in OpenClaw's answer shape ({ok, result: {details}}), so
 * Hangar has one history path for both runtimes.
 */
const MAIN = 'agent:main:';
async function invokeTool(req, res) {
  const body = await readJson(req);
  const tool = body?.name ?? body?.tool;
  const args = body?.args ?? {};
  if (tool === 'sessions_list') {
    const sessions = (await history.list()).map((s) => ({ key: MAIN + s.id, sessionId: s.id, agentId: 'main', updatedAt: s.updatedAt }));
    return sendJson(res, 200, { ok: true, result: { details: { count: sessions.length, sessions } } });
  }
  if (tool === 'sessions_history') {
    const key = typeof args.sessionKey === 'string' ? args.sessionKey : '';
    const messages = (await history.read(key.startsWith(MAIN) ? key.slice(MAIN.length) : key)) ?? [];
    const shaped = messages.map((m) => ({ role: m.role, content: m.content, timestamp: Date.parse(m.at), ...(m.model ? { model: m.model } : {}) }));
    return sendJson(res, 200, { ok: true, result: { details: { sessionKey: key, messages: shaped } } });
  }
  return sendError(res, 404, 'not_found', `tool ${JSON.stringify(tool)} is not available`);
}

/** The member list Hangar pushes (memberProvisioning): list, set one, remove one; all idempotent. */
async function membersRoute(req, res, pathname) {
  if (pathname === '/internal/members') {
    if (req.method !== 'GET') return sendError(res, 405, 'method_not_allowed', 'GET only');
    return sendJson(res, 200, { members: members.list() });
  }
  let userId;
  try {
    userId = decodeURIComponent(pathname.slice('/internal/members/'.length));
  } catch {
    return sendError(res, 400, 'invalid_input', 'bad member id');
  }
  try {
    if (req.method === 'PUT') return sendJson(res, 200, { member: await members.put(userId, await readJson(req)) });
    if (req.method === 'DELETE') {
      await members.remove(userId);
      res.writeHead(204).end();
      return undefined;
    }
  } catch (err) {
    if (err instanceof MemberInputError) return sendError(res, 400, 'invalid_input', err.message);
    throw err;
  }
  return sendError(res, 405, 'method_not_allowed', 'PUT or DELETE');
}

/**
 * Test hook: while this file exists, /health and /readyz never answer (an
 * agent that hangs while its container runs). Only someone with the Docker
 * engine can make it (`docker exec ... touch`): the root filesystem is read-only,
 * /tmp is the container's own tmpfs, and no route writes files there.
 */
const HANG_HEALTH_FILE = '/tmp/hangar-test-hang-health';

async function route(req, res, pathname) {
  // /readyz as OpenClaw has it: this agent is ready as soon as it listens.
  if (req.method === 'GET' && (pathname === '/health' || pathname === '/readyz')) {
    if (existsSync(HANG_HEALTH_FILE)) return undefined;
    return sendJson(res, 200, { status: 'ok', version: VERSION });
  }
  if (!authorized(req)) return sendError(res, 401, 'unauthorized', 'gateway token required');
  if (pathname === '/v1/chat/completions' && req.method === 'POST') return chat(req, res);
  if (pathname === '/v1/sessions' && req.method === 'GET') return sendJson(res, 200, { sessions: await history.list() });
  if (pathname === '/tools/invoke' && req.method === 'POST') return invokeTool(req, res);
  if (pathname === '/v1/info' && req.method === 'GET') return sendJson(res, 200, { version: VERSION, changelog });
  if (pathname === '/internal/members' || pathname.startsWith('/internal/members/')) return membersRoute(req, res, pathname);
  return sendError(res, 404, 'not_found', `no route ${req.method} ${pathname}`);
}

server = http.createServer(async (req, res) => {
  const started = performance.now();
  const pathname = new URL(req.url ?? '/', 'http://agent').pathname;
  // One line per request: method, path, status, time, Hangar's user id; never headers or bodies.
  res.on('close', () => {
    log('request', {
      method: req.method,
      path: pathname,
      status: res.statusCode,
      ms: Math.round(performance.now() - started),
      user: caller(req)?.id,
      ...(res.writableFinished ? {} : { aborted: true }),
    });
  });
  try {
    await route(req, res, pathname);
  } catch (err) {
    if (res.headersSent) {
      // Mid-stream: the status is gone, so end the stream and say why in the log.
      log('response failed mid-way', { path: pathname, error: describe(err) });
      return res.destroy();
    }
    if (err instanceof BadRequest) return sendError(res, err.status ?? 400, 'invalid_input', err.message);
    if (err instanceof UpstreamError) {
      const extra = err.upstreamStatus ? { upstreamStatus: err.upstreamStatus } : {};
      return sendError(res, err.status, err.code, err.message, extra);
    }
    if (err?.name === 'AbortError' || res.destroyed) return undefined;
    log('request failed', { path: pathname, error: describe(err) });
    return sendError(res, 500, 'agent_error', 'internal error');
  }
});

server.listen(PORT, '0.0.0.0', () => {
  log('agent ready', { port: PORT, version: VERSION, providers: Object.keys(providers), primary: config.agents?.defaults?.model?.primary ?? null, historyCaps });
});
