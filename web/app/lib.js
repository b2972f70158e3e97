// Shared pieces of the UI: the API client, data hooks and small components.
import { html, useCallback, useEffect, useRef, useState } from '/ui/vendor/preact-htm.js';

export { html };

let csrfToken = null;
export const setCsrf = (t) => (csrfToken = t);
/** For the few calls that read a stream and so use fetch directly. */
export const csrfHeaders = () => (csrfToken ? { 'x-hangar-csrf': csrfToken } : {});

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `The server answered ${status}`);
    this.status = status;
    this.code = body?.error?.code ?? 'http_error';
    this.details = body?.error?.details;
  }
}

/** The REST API, as the contract says: JSON in and out, the CSRF header on cookie writes. */
export async function api(path, { method, body, headers = {} } = {}) {
  method ??= body === undefined ? 'GET' : 'POST';
  const h = { accept: 'application/json', ...headers };
  if (body !== undefined) h['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) h['x-hangar-csrf'] = csrfToken;
  let res;
  try {
    res = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  } catch {
    throw new ApiError(0, { error: { code: 'network', message: 'Hangar did not answer. Check your connection and try again.' } });
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

/** Reads server-sent events from a fetch response, calling onEvent(event, data) for each. */
export async function readSse(res, onEvent) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let event = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
      }
      if (data.length) onEvent(event, data.join('\n'));
    }
  }
}

/** GET a path (null: none yet); loading, error and data kept apart so an error never reads as "nothing here". */
export function useApi(path, deps = []) {
  const [state, setState] = useState({ loading: true, error: null, data: null });
  const seq = useRef(0);
  const load = useCallback(async () => {
    const n = ++seq.current;
    // No path: nothing to ask yet (e.g. an agent that does not exist).
    if (!path) return setState({ loading: false, error: null, data: null });
    setState((s) => ({ ...s, loading: true, error: null }));
    try {
      const data = await api(path);
      if (n === seq.current) setState({ loading: false, error: null, data });
    } catch (error) {
      if (n === seq.current) setState({ loading: false, error, data: null });
    }
  }, [path]);
  useEffect(() => {
    load();
  }, [load, ...deps]);
  return { ...state, reload: load };
}

/** Runs an action with a busy flag and an error to show. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const run = useCallback(async (fn) => {
    setBusy(true);
    setError(null);
    try {
      return await fn();
    } catch (e) {
      setError(e);
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, run, setError };
}

export const Loading = ({ what = 'Loading' }) => html`<p class="loading" role="status">${what}…</p>`;
export const Empty = ({ children }) => html`<p class="empty">${children}</p>`;
export function ErrorBox({ error }) {
  if (!error) return null;
  return html`<div class="error" role="alert"><strong>${error.code ?? 'error'}</strong>: ${error.message}</div>`;
}
export const Badge = ({ status }) => html`<span class=${`badge ${status}`}>${String(status).replace(/_/g, ' ')}</span>`;

/** Link to a workflow in the Temporal UI (for operators). */
export function TemporalLink({ config, workflowId, url }) {
  const href = url ?? (config ? `${config.temporalUiUrl}/namespaces/${config.temporalNamespace}/workflows/${encodeURIComponent(workflowId)}` : null);
  if (!href) return null;
  return html`<a href=${href} target="_blank" rel="noopener">Workflow ${workflowId} in Temporal UI ↗</a>`;
}

/** A list page's data with ?page=&limit=, and a pager. */
export function Pager({ meta, page, setPage }) {
  if (!meta) return null;
  return html`<div class="row" aria-label="pagination">
    <button class="secondary" disabled=${page <= 1} onClick=${() => setPage(page - 1)}>Previous</button>
    <span class="muted">Page ${meta.page} of ${meta.totalPages} (${meta.total} in all)</span>
    <button class="secondary" disabled=${page >= meta.totalPages} onClick=${() => setPage(page + 1)}>Next</button>
  </div>`;
}

export const short = (digest) => (digest ? String(digest).replace(/^sha256:/, '').slice(0, 12) : '—');
export const when = (iso) => (iso ? new Date(iso).toLocaleString() : '—');

/** Calls fn every ms while mounted (bounded by the page's life). */
export function useInterval(fn, ms, active = true) {
  const saved = useRef(fn);
  saved.current = fn;
  useEffect(() => {
    if (!active) return undefined;
    const t = setInterval(() => saved.current(), ms);
    return () => clearInterval(t);
  }, [ms, active]);
}
