// Chat history in the agent's own volume: one JSONL file per session, one line
// per completed exchange. Append-only, so a crash loses at most the exchange
// being written; reads are bounded, so a long-lived session stays cheap.
import { appendFile, mkdir, open, readdir, stat } from 'node:fs/promises';
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

export function createHistory(dataDir) {
  const dir = path.join(dataDir, 'sessions');
  const file = (id) => path.join(dir, `${toFile(id)}.jsonl`);

  async function append(sessionId, entry) {
    await mkdir(dir, { recursive: true });
    // One write per line: O_APPEND keeps concurrent exchanges from interleaving.
    await appendFile(file(sessionId), `${JSON.stringify(entry)}\n`);
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
    const withTimes = await Promise.all(ids.map(async (id) => ({ id, mtime: (await stat(file(id))).mtimeMs })));
    withTimes.sort((a, b) => b.mtime - a.mtime);
    const sessions = [];
    for (const { id, mtime } of withTimes.slice(0, SESSION_LIMIT)) {
      sessions.push({ id, updatedAt: Math.round(mtime), messages: toMessages(await tail(id)) });
    }
    return sessions;
  }

  /** One session's messages (OpenClaw's sessions_history shape), or null when it has none. */
  async function read(id) {
    if (!SESSION_ID.test(id)) return null;
    const entries = await tail(id).catch((err) => (err.code === 'ENOENT' ? null : Promise.reject(err)));
    return entries && toMessages(entries);
  }

  return { append, list, read };
}
