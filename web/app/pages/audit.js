import { useState } from '/ui/vendor/preact-htm.js';
import { Empty, ErrorBox, html, Loading, Pager, useApi, when } from '../lib.js';

// Admin: the audit log. Who did what to what, when, with the before and after;
// filtered by action (or a prefix like `user.`), target (or `user:`), actor
// and time; paginated; the same filters exported as CSV.

const FIELDS = [
  { name: 'action', label: 'Action (or prefix, e.g. user.)' },
  { name: 'target', label: 'Target (or prefix, e.g. user:)' },
  { name: 'actorId', label: 'Actor id' },
  { name: 'from', label: 'From', type: 'datetime-local' },
  { name: 'to', label: 'To', type: 'datetime-local' },
];

function query(filters) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(filters)) {
    if (!v) continue;
    // The API takes ISO timestamps; the browser's picker gives local time.
    q.set(k, k === 'from' || k === 'to' ? new Date(v).toISOString() : v.trim());
  }
  return q;
}

const json = (v) => (v === null || v === undefined ? '' : JSON.stringify(v, null, 1));

export function AuditPage() {
  const [draft, setDraft] = useState({ action: '', target: '', actorId: '', from: '', to: '' });
  const [filters, setFilters] = useState(draft);
  const [page, setPage] = useState(1);
  const q = query(filters);
  const list = useApi(`/api/admin/audit?${q}&page=${page}&limit=50`);
  return html`<h1>Audit log</h1>
    <form class="card" aria-label="Audit filters" onSubmit=${(e) => {
      e.preventDefault();
      setPage(1);
      setFilters({ ...draft });
    }}>
      <div class="row">
        ${FIELDS.map((f) => html`<label>${f.label} <input name=${f.name} type=${f.type ?? 'text'} value=${draft[f.name]} onInput=${(e) => setDraft({ ...draft, [f.name]: e.target.value })} /></label>`)}
      </div>
      <div class="row">
        <button type="submit">Filter</button>
        <a href=${`/api/admin/audit.csv?${q}`} download data-testid="audit-csv">Export CSV</a>
      </div>
    </form>
    <section class="card">
      ${list.loading && !list.data ? html`<${Loading} what="Loading the audit log" />` : null}
      <${ErrorBox} error=${list.error} />
      ${list.data?.data.length === 0 ? html`<${Empty}>No entries match.</${Empty}>` : null}
      ${list.data?.data.length ? html`<div class="table-wrap"><table aria-label="Audit entries"><thead><tr><th>When</th><th>Who</th><th>Action</th><th>Target</th><th>Before</th><th>After</th></tr></thead><tbody>
        ${list.data.data.map((e) => html`<tr data-action=${e.action}>
          <td>${when(e.at)}</td>
          <td>${e.actorName ?? (e.actorId ? html`<code>${e.actorId}</code>` : html`<span class="muted">system / console</span>`)}</td>
          <td><code>${e.action}</code></td>
          <td><code>${e.target}</code></td>
          <td><pre class="mono">${json(e.before)}</pre></td>
          <td><pre class="mono">${json(e.after)}</pre></td>
        </tr>`)}
      </tbody></table></div>` : null}
      <${Pager} meta=${list.data?.meta} page=${page} setPage=${setPage} />
    </section>`;
}
