// Chat history in the agent's own volume: one JSONL file per session, one line
// per completed exchange. Append-only, so a crash loses at most the exchange
// being written; reads are bounded, so a long-lived session stays cheap.
//
// Capped, because a member can send megabytes per request and the volume sits
// on a disk other agents (and maybe Postgres) share: each entry is cut to
// HISTORY_MAX_ENTRY_BYTES (long turns keep their start and a marker), each
// session keeps its newest HISTORY_MAX_ENTRIES entries within
// HISTORY_MAX_SESSION_BYTES, and all sessions together stay under
// HISTORY_MAX_TOTAL_BYTES (the least recently written sessions go first).
import { appendFile, mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';

// Session keys as OpenClaw's x-openclaw-session-key carries them (Hangar sends
// "hangar:<userId>:<session>"); ':' is stored as '~' in file names.
const SESSION_ID = /^[a-zA-Z0-9_:-]{1,160}$/;
const toFile = (id) => id.replaceAll(':', '~');
const fromFile = (name) => name.replaceAll('~', ':');
/** Entries returned per session. */
export const ENTRY_LIMIT = 200;
/** Sessions returned, most recently written first. */
const SESSION_LIMIT = 100;
/** Bytes read from the end of a file: enough for ENTRY_LIMIT ordinary entries. */
const TAIL_BYTES = 8 * 1024 * 1024;

export const DEFAULT_CAPS = Object.freeze({
  entryBytes: 64 * 1024,
  sessionEntries: 1000,
  sessionBytes: 2 * 1024 * 1024,
  totalBytes: 64 * 1024 * 1024,
});

/**
 * Compaction goes below the cap, not to it, so the next appends do not each
 * rewrite the file (amortised: one rewrite per quarter of the cap).
 */
const COMPACT_TO = 0.75;
/** Room left in a truncated text for the marker. */
const MARKER_RESERVE = 48;

/** Caps from the environment; a missing or unreadable value keeps its default. */
export function capsFromEnv(env = process.env) {
  const read = (name, dflt, min) => {
    const v = Number(env[name]);
    return Number.isSafeInteger(v) && v >= min ? v : dflt;
  };
  const entryBytes = read('HISTORY_MAX_ENTRY_BYTES', DEFAULT_CAPS.entryBytes, 1024);
  const sessionEntries = read('HISTORY_MAX_ENTRIES', DEFAULT_CAPS.sessionEntries, 1);
  // One entry always fits a session, and one session the whole history.
  const sessionBytes = Math.max(read('HISTORY_MAX_SESSION_BYTES', DEFAULT_CAPS.sessionBytes, 1024), entryBytes + 1);
  const totalBytes = Math.max(read('HISTORY_MAX_TOTAL_BYTES', DEFAULT_CAPS.totalBytes, 1024), sessionBytes);
  return { entryBytes, sessionEntries, sessionBytes, totalBytes };
}

/** The session the request names (OpenClaw's header first, then Hangar's older one), else "default". */
export function sessionIdFrom(...headers) {
  const h = headers.find((x) => typeof x === 'string' && SESSION_ID.test(x));
  return h ? h.toLowerCase() : 'default';
}

/** The user's turn: the user messages after the last assistant message. */
export function userTurn(messages) {
  let start = 0;
  messages.forEach((m, i) => {
    if (m?.role === 'assistant') start = i + 1;
  });
  return messages.slice(start).filter((m) => m?.role === 'user');
}

const bytes = (s) => Buffer.byteLength(s, 'utf8');
export const truncationMarker = (dropped) => `\n…[truncated ${dropped} bytes]`;

/** The first `maxBytes` of a text (never splitting a character), plus a marker saying how much was cut. */
export function truncateText(text, maxBytes) {
  const buf = Buffer.from(text, 'utf8');
  if (buf.length <= maxBytes) return text;
  let end = Math.max(0, maxBytes - MARKER_RESERVE);
  // Back off to the start of a character: a continuation byte is 10xxxxxx.
  while (end > 0 && (buf[end] & 0xc0) === 0x80) end--;
  return buf.subarray(0, end).toString('utf8') + truncationMarker(buf.length - end);
}

const asText = (content) => (typeof content === 'string' ? content : JSON.stringify(content ?? ''));

/**
 * One history line (no newline) of at most `maxBytes`. Texts over their share
 * are cut (the shortest keep everything they have, the rest split what is
 * left); when even the message skeletons do not fit, the oldest messages of
 * the turn go first.
 */
export function capEntry(entry, maxBytes) {
  const whole = JSON.stringify(entry);
  if (bytes(whole) <= maxBytes) return { line: whole, truncated: false };
  let user = (entry.user ?? []).map((m) => ({ role: m.role, content: asText(m.content) }));
  let dropped = 0;
  const assistant = asText(entry.assistant);
  // JSON escaping can make a text longer than its bytes: each retry halves the budget.
  let shrink = 0;
  for (let attempt = 0; attempt < 16 && shrink < 8; attempt++) {
    const skeleton = { ...entry, user: user.map((m) => ({ ...m, content: '' })), assistant: '', ...(dropped ? { droppedMessages: dropped } : {}) };
    const texts = [...user.map((m) => m.content), assistant];
    const overhead = bytes(JSON.stringify(skeleton)) + texts.length * MARKER_RESERVE;
    if (overhead > maxBytes && user.length > 1) {
      const keep = Math.max(1, Math.floor(user.length / 2));
      dropped += user.length - keep;
      user = user.slice(-keep);
      continue;
    }
    let left = Math.max(0, maxBytes - overhead) / 2 ** shrink;
    const share = new Map();
    const order = texts.map((t, i) => ({ i, size: bytes(t) })).sort((a, b) => a.size - b.size);
    order.forEach(({ i, size }, k) => {
      const give = Math.min(size, Math.floor(left / (order.length - k)));
      share.set(i, give);
      left -= give;
    });
    const cut = texts.map((t, i) => (bytes(t) > share.get(i) ? truncateText(t, share.get(i) + MARKER_RESERVE) : t));
    const line = JSON.stringify({
      ...skeleton,
      user: user.map((m, i) => ({ ...m, content: cut[i] })),
      assistant: cut[cut.length - 1],
    });
    if (bytes(line) <= maxBytes) return { line, truncated: true };
    shrink++;
  }
  // Pathological input (e.g. a huge role string): keep that the exchange happened.
  return { line: JSON.stringify({ at: entry.at, model: entry.model, user: [], assistant: truncationMarker(bytes(whole)) }), truncated: true };
}

/** The newest lines whose total (with newlines) fits `maxBytes`, at most `maxEntries` of them. */
export function keepNewest(lines, { maxBytes, maxEntries }) {
  let size = 0;
  let first = lines.length;
  while (first > 0 && lines.length - first < maxEntries) {
    const next = bytes(lines[first - 1]) + 1;
    if (size + next > maxBytes) break;
    size += next;
    first--;
  }
  return { lines: lines.slice(first), bytes: size };
}

export function createHistory(dataDir, caps = DEFAULT_CAPS, log = () => undefined) {
  const dir = path.join(dataDir, 'sessions');
  const file = (id) => path.join(dir, `${toFile(id)}.jsonl`);

  // One queue per session: appends, compaction and eviction of a file never interleave.
  const queues = new Map();
  function serial(id, fn) {
    const run = (queues.get(id) ?? Promise.resolve()).then(fn);
    const tail = run.catch(() => undefined);
    queues.set(id, tail);
    void tail.then(() => {
      if (queues.get(id) === tail) queues.delete(id);
    });
    return run;
  }

  /** Per session: bytes and entries on disk. Learnt lazily, then kept in step. */
  const sizes = new Map();
  let total = null;

  async function scanTotal() {
    if (total !== null) return;
    const names = await readdir(dir).catch((err) => (err.code === 'ENOENT' ? [] : Promise.reject(err)));
    let sum = 0;
    for (const n of names) {
      // Left by a crash mid-compaction: the .jsonl beside it is whole.
      if (n.endsWith('.jsonl.tmp')) await rm(path.join(dir, n), { force: true });
      else if (n.endsWith('.jsonl')) sum += (await stat(path.join(dir, n)).catch(() => ({ size: 0 }))).size;
    }
    total ??= sum;
  }

  async function sessionSize(id) {
    let s = sizes.get(id);
    if (s) return s;
    const st = await stat(file(id)).catch((err) => (err.code === 'ENOENT' ? null : Promise.reject(err)));
    if (!st) s = { bytes: 0, entries: 0 };
    // Larger than the cap (written before there was one): compaction counts it.
    else if (st.size > caps.sessionBytes) s = { bytes: st.size, entries: Infinity };
    else s = { bytes: st.size, entries: (await readFile(file(id), 'utf8')).split('\n').filter(Boolean).length };
    sizes.set(id, s);
    return s;
  }

  /** Rewrites a session with its newest entries, below the caps; atomic (temp file + rename). */
  async function compact(id, s) {
    const fh = await open(file(id), 'r');
    let text;
    let start;
    try {
      const { size } = await fh.stat();
      start = Math.max(0, size - caps.sessionBytes);
      const buf = Buffer.alloc(size - start);
      await fh.read(buf, 0, buf.length, start);
      text = buf.toString('utf8');
    } finally {
      await fh.close();
    }
    const lines = text.split('\n');
    if (start > 0) lines.shift(); // began mid-line
    const whole = lines.filter(Boolean);
    let kept = keepNewest(whole, {
      maxBytes: Math.floor(caps.sessionBytes * COMPACT_TO),
      maxEntries: Math.max(1, Math.floor(caps.sessionEntries * COMPACT_TO)),
    });
    // The newest exchange always stays (an entry is capped below the session cap).
    if (kept.lines.length === 0 && whole.length > 0) kept = keepNewest(whole, { maxBytes: caps.sessionBytes, maxEntries: 1 });
    await writeFile(`${file(id)}.tmp`, kept.lines.map((l) => `${l}\n`).join(''));
    await rename(`${file(id)}.tmp`, file(id));
    total -= s.bytes - kept.bytes;
    Object.assign(s, { bytes: kept.bytes, entries: kept.lines.length });
  }

  // Eviction runs outside every session queue (and one at a time), so two
  // sessions evicting each other can never wait on each other.
  let evicting = Promise.resolve();
  function evict(keep) {
    evicting = evicting.then(async () => {
      if (total <= caps.totalBytes) return;
      const names = (await readdir(dir)).filter((n) => n.endsWith('.jsonl'));
      const files = await Promise.all(
        names.map(async (n) => ({ id: n.slice(0, -'.jsonl'.length), mtime: (await stat(path.join(dir, n)).catch(() => ({ mtimeMs: 0 }))).mtimeMs })),
      );
      files.sort((a, b) => a.mtime - b.mtime);
      const target = caps.totalBytes * COMPACT_TO;
      for (const { id } of files) {
        if (total <= target) break;
        if (id === keep) continue;
        await serial(id, async () => {
          const st = await stat(file(id)).catch(() => null);
          await rm(file(id), { force: true });
          total -= st?.size ?? 0;
          sizes.delete(id);
          log('history: dropped the least recently used session to stay under the total cap', { sessionId: id, bytes: st?.size ?? 0 });
        });
      }
    }).catch((err) => log('history: eviction failed', { error: err.code ?? err.message }));
    return evicting;
  }

  async function append(sessionId, entry) {
    const { line, truncated } = capEntry(entry, caps.entryBytes);
    if (truncated) log('history: entry truncated to the per-entry cap', { sessionId, cap: caps.entryBytes });
    await serial(sessionId, async () => {
      await mkdir(dir, { recursive: true });
      await scanTotal();
      const s = await sessionSize(sessionId);
      // One write per line: O_APPEND keeps a line whole even if another process appends.
      await appendFile(file(sessionId), `${line}\n`);
      const n = bytes(line) + 1;
      s.bytes += n;
      s.entries += 1;
      total += n;
      if (s.bytes > caps.sessionBytes || s.entries > caps.sessionEntries) await compact(sessionId, s);
    });
    if (total > caps.totalBytes) await evict(sessionId);
  }

  async function tail(id) {
    const fh = await open(file(id), 'r');
    try {
      const { size } = await fh.stat();
      const start = Math.max(0, size - TAIL_BYTES);
      const buf = Buffer.alloc(size - start);
      await fh.read(buf, 0, buf.length, start);
      const lines = buf.toString('utf8').split('\n');
      if (start > 0) lines.shift(); // began mid-line
      const entries = [];
      for (const line of lines.filter(Boolean).slice(-ENTRY_LIMIT)) {
        try {
          entries.push(JSON.parse(line));
        } catch {
          // A torn last line from a crash mid-write: skip it, keep the rest.
        }
      }
      return entries;
    } finally {
      await fh.close();
    }
  }

  /** Entries flattened into chat messages, oldest first. */
  function toMessages(entries) {
    return entries.flatMap((e) => [
      ...(e.user ?? []).map((m) => ({ role: 'user', content: m.content, at: e.at, ...(e.by ? { by: e.by } : {}) })),
      { role: 'assistant', content: e.assistant, at: e.at, model: e.model },
    ]);
  }

  async function list() {
    const names = await readdir(dir).catch((err) => (err.code === 'ENOENT' ? [] : Promise.reject(err)));
    const ids = names.filter((n) => n.endsWith('.jsonl')).map((n) => fromFile(n.slice(0, -'.jsonl'.length))).filter((id) => SESSION_ID.test(id));
    const withTimes = (await Promise.all(ids.map(async (id) => ({ id, mtime: (await stat(file(id)).catch(() => null))?.mtimeMs })))).filter((s) => s.mtime != null);
    withTimes.sort((a, b) => b.mtime - a.mtime);
    const sessions = [];
    for (const { id, mtime } of withTimes.slice(0, SESSION_LIMIT)) {
      // Evicted between the listing and now: not history any more.
      const entries = await tail(id).catch((err) => (err.code === 'ENOENT' ? null : Promise.reject(err)));
      if (entries) sessions.push({ id, updatedAt: Math.round(mtime), messages: toMessages(entries) });
    }
    return sessions;
  }

  /** One session's messages (OpenClaw's sessions_history shape), or null when it has none. */
  async function read(id) {
    if (!SESSION_ID.test(id)) return null;
    const entries = await tail(id).catch((err) => (err.code === 'ENOENT' ? null : Promise.reject(err)));
    return entries && toMessages(entries);
  }

  /** Bytes the history holds on disk now (for tests and logs). */
  async function usage() {
    await scanTotal();
    return total;
  }

  return { append, list, read, usage };
}
