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

  const lost = (err?: Error) => {
    if (err) handlers.onError?.(err);
    listening = false;
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
    c.on('notification', (msg) => {
      if (msg.channel !== CHANGES_CHANNEL || !msg.payload) return;
      try {
        handlers.onChange(JSON.parse(msg.payload) as DbChange);
      } catch {
        // Unreadable payload: whatever it was about, forget everything.
        handlers.onReset();
      }
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${CHANGES_CHANNEL}`);
      if (closed || client !== c) return;
      attempt = 0;
      // Anything cached before this moment may have missed a change.
      handlers.onReset();
      listening = true;
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
      if (retryTimer) clearTimeout(retryTimer);
      const c = client;
      client = null;
      c?.removeAllListeners();
      c?.on('error', () => undefined);
      await c?.end().catch(() => undefined);
    },
  };
}
