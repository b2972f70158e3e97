import pg from 'pg';

/** What the `hangar_changes` triggers announce (prisma/migrations/*_change_notifications): the old row's keys. */
export interface DbChange {
  t: 'users' | 'sessions' | 'api_tokens' | 'agents';
  id?: string;
  userId?: string;
  tokenHash?: string;
  ownerKind?: string;
  ownerId?: string;
  name?: string;
  /** users only: the status after the change. */
  status?: string;
}

export const CHANGES_CHANNEL = 'hangar_changes';
/** How often the listener checks that notifications really reach it, and how long an echo may take. */
const HEARTBEAT_MS = 5000;

export interface DbChanges {
  /** True while LISTEN is in place: only then may a cache trust itself. */
  readonly listening: boolean;
  close(): Promise<void>;
}

/**
 * One dedicated connection that LISTENs to `hangar_changes` (a pooled one
 * cannot: LISTEN belongs to a session). `onChange` sees every committed
 * change; `onReset` is called whenever changes may have been missed (the
 * connection dropped, or it is (re)established), so the caller drops
 * everything it holds. Reconnects with backoff until closed.
 *
 * It counts as listening only once a notification it sent itself came back,
 * and stays so only while each heartbeat's echo returns in time: a pooler that
 * does not carry LISTEN (transaction pooling), or a silently dead connection,
 * turns the caches off instead of leaving them blind.
 */
export function listenForDbChanges(
  databaseUrl: string,
  handlers: { onChange(change: DbChange): void; onReset(): void; onError?(err: Error): void },
): DbChanges {
  let client: pg.Client | null = null;
  let listening = false;
  let closed = false;
  let retryTimer: NodeJS.Timeout | null = null;
  let attempt = 0;
  let heartbeat: NodeJS.Timeout | null = null;
  /** The ping awaiting its echo, and since when. */
  let outstanding: { id: string; since: number } | null = null;
  let pings = 0;

  const lost = (err?: Error) => {
    if (err) handlers.onError?.(err);
    listening = false;
    outstanding = null;
    if (heartbeat) clearInterval(heartbeat);
    heartbeat = null;
    handlers.onReset();
    const c = client;
    client = null;
    c?.removeAllListeners();
    // A dead connection's end() can reject; nothing is left to clean either way.
    c?.on('error', () => undefined);
    void c?.end().catch(() => undefined);
    if (!closed && !retryTimer) schedule();
  };

  const schedule = () => {
    if (retryTimer) clearTimeout(retryTimer);
    const wait = Math.min(100 * 2 ** attempt++, 5000);
    retryTimer = setTimeout(() => {
      retryTimer = null;
      void connect();
    }, wait);
    retryTimer.unref();
  };

  async function connect() {
    if (closed) return;
    const c = new pg.Client({ connectionString: databaseUrl, application_name: 'hangar-api-changes', keepAlive: true });
    client = c;
    c.on('error', (err) => {
      if (client === c) lost(err);
    });
    c.on('end', () => {
      if (client === c) lost(new Error('change notifications connection ended'));
    });
    const ping = () => {
      if (client !== c) return;
      if (outstanding && Date.now() - outstanding.since > HEARTBEAT_MS) {
        lost(new Error('change notifications stopped arriving (a heartbeat was not echoed)'));
        return;
      }
      if (outstanding) return;
      outstanding = { id: `${process.pid}-${++pings}`, since: Date.now() };
      c.query('SELECT pg_notify($1, $2)', [CHANGES_CHANNEL, JSON.stringify({ t: 'ping', id: outstanding.id })]).catch((err) => {
        if (client === c) lost(err as Error);
      });
    };
    c.on('notification', (msg) => {
      if (msg.channel !== CHANGES_CHANNEL || !msg.payload) return;
      let change: DbChange | { t: 'ping'; id: string };
      try {
        change = JSON.parse(msg.payload) as DbChange | { t: 'ping'; id: string };
      } catch {
        // Unreadable payload: whatever it was about, forget everything.
        handlers.onReset();
        return;
      }
      if (change.t !== 'ping') return handlers.onChange(change);
      if (client !== c || change.id !== outstanding?.id) return; // another process's heartbeat
      outstanding = null;
      if (!listening) {
        // Our own notification came back: from now on every change reaches us.
        // Anything cached before this moment may have missed one.
        handlers.onReset();
        listening = true;
        attempt = 0;
      }
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${CHANGES_CHANNEL}`);
      if (closed || client !== c) return;
      heartbeat = setInterval(ping, HEARTBEAT_MS);
      heartbeat.unref();
      ping();
    } catch (err) {
      if (client === c) lost(err as Error);
    }
  }

  void connect();

  return {
    get listening() {
      return listening;
    },
    async close() {
      closed = true;
      listening = false;
      if (heartbeat) clearInterval(heartbeat);
      if (retryTimer) clearTimeout(retryTimer);
      const c = client;
      client = null;
      c?.removeAllListeners();
      c?.on('error', () => undefined);
      await c?.end().catch(() => undefined);
    },
  };
}
