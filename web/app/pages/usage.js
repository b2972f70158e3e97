import { useState } from '/ui/vendor/preact-htm.js';
import { api, Empty, ErrorBox, html, Loading, useAction, useApi, when } from '../lib.js';

// Chat usage in tokens (in = prompt, out = completion) per UTC month: your
// own, and for admins the instance's totals and the monthly budgets. The
// numbers may lag the last few seconds of chats on other API processes.

const fmt = (n) => Number(n ?? 0).toLocaleString();
const Totals = ({ t }) => html`<span>${fmt(t.tokensIn)} in · ${fmt(t.tokensOut)} out · ${fmt(t.requests)} answers</span>`;

function BudgetRow({ b, onRemove }) {
  return html`<tr data-budget=${`${b.scope}:${b.targetId}`} data-state=${b.state}>
    <td>${b.scope}</td>
    <td>${b.name ?? html`<code>${b.targetId}</code>`}</td>
    <td>${fmt(b.used)} / ${fmt(b.monthlyTokens)}</td>
    <td>${b.percent} %</td>
    <td><span class=${`badge ${b.state === 'ok' ? 'ok' : b.state === 'warning' ? 'pending' : 'refused'}`}>${b.state}</span></td>
    <td>${when(b.resetsAt)}</td>
    ${onRemove ? html`<td><button type="button" class="secondary" onClick=${() => onRemove(b)}>Remove</button></td>` : null}
  </tr>`;
}

export function MyUsagePage() {
  const mine = useApi('/api/me/usage');
  const u = mine.data;
  return html`<h1>My usage</h1>
    <section class="card">
      ${mine.loading && !u ? html`<${Loading} what="Loading your usage" />` : null}
      <${ErrorBox} error=${mine.error} />
      ${u ? html`<p>This month (resets ${when(u.resetsAt)}): <strong data-testid="my-usage-totals"><${Totals} t=${u.totals} /></strong></p>
        ${u.rows.length === 0 ? html`<${Empty}>No chats this month yet.</${Empty}>` : html`<div class="table-wrap"><table aria-label="My usage"><thead><tr><th>Agent</th><th>Model</th><th>In</th><th>Out</th><th>Answers</th></tr></thead><tbody>
          ${u.rows.map((r) => html`<tr><td><code>${r.agentId}</code>${r.workspaceId ? ' (workspace)' : ''}</td><td>${r.model}</td><td>${fmt(r.tokensIn)}</td><td>${fmt(r.tokensOut)}</td><td>${fmt(r.requests)}</td></tr>`)}
        </tbody></table></div>`}
        <h2>Budgets</h2>
        ${u.budgets.length === 0 ? html`<${Empty}>No budget limits your chats.</${Empty}>` : html`<div class="table-wrap"><table aria-label="My budgets"><thead><tr><th>Scope</th><th>For</th><th>Used</th><th>Share</th><th>State</th><th>Resets</th></tr></thead><tbody>
          ${u.budgets.map((b) => html`<${BudgetRow} b=${b} />`)}
        </tbody></table></div>`}` : null}
    </section>`;
}

function Breakdown({ label, rows, keyOf }) {
  if (!rows?.length) return html`<${Empty}>No ${label.toLowerCase()} this month.</${Empty}>`;
  return html`<div class="table-wrap"><table aria-label=${label}><thead><tr><th>${label}</th><th>In</th><th>Out</th><th>Answers</th></tr></thead><tbody>
    ${rows.map((r) => html`<tr><td>${r.name ?? html`<code>${keyOf(r)}</code>`}</td><td>${fmt(r.tokensIn)}</td><td>${fmt(r.tokensOut)}</td><td>${fmt(r.requests)}</td></tr>`)}
  </tbody></table></div>`;
}

export function AdminUsagePage() {
  const [month, setMonth] = useState(new Date().toISOString().slice(0, 7));
  const totals = useApi(`/api/admin/usage?month=${month}`);
  const budgets = useApi('/api/admin/budgets');
  const [draft, setDraft] = useState({ scope: 'user', targetId: '', monthlyTokens: '' });
  const action = useAction();
  const t = totals.data;

  async function save(e) {
    e.preventDefault();
    const done = await action.run(() => api(`/api/admin/budgets/${draft.scope}/${encodeURIComponent(draft.targetId.trim())}`, { method: 'PUT', body: { monthlyTokens: Number(draft.monthlyTokens) } }));
    if (done) {
      setDraft({ ...draft, targetId: '', monthlyTokens: '' });
      budgets.reload();
    }
  }
  const remove = (b) => action.run(async () => {
    await api(`/api/admin/budgets/${b.scope}/${encodeURIComponent(b.targetId)}`, { method: 'DELETE' });
    budgets.reload();
  });

  return html`<h1>Usage and budgets</h1>
    <section class="card">
      <label>Month <input type="month" value=${month} onInput=${(e) => e.target.value && setMonth(e.target.value)} /></label>
      ${totals.loading && !t ? html`<${Loading} what="Loading the totals" />` : null}
      <${ErrorBox} error=${totals.error} />
      ${t ? html`<p>All chats: <strong data-testid="usage-totals"><${Totals} t=${t.totals} /></strong></p>
        <h2>Per user</h2><${Breakdown} label="Users" rows=${t.byUser} keyOf=${(r) => r.userId} />
        <h2>Per workspace</h2><${Breakdown} label="Workspaces" rows=${t.byWorkspace} keyOf=${(r) => r.workspaceId} />
        <h2>Per model</h2><${Breakdown} label="Models" rows=${t.byModel.map((r) => ({ ...r, name: r.model }))} keyOf=${(r) => r.model} />` : null}
    </section>
    <section class="card">
      <h2>Monthly token budgets</h2>
      <p class="muted">Tokens in + out per UTC month. Users are warned from 80 %; over the budget, chat answers 429 until the month ends.</p>
      ${budgets.loading && !budgets.data ? html`<${Loading} what="Loading the budgets" />` : null}
      <${ErrorBox} error=${budgets.error} />
      ${budgets.data?.data.length === 0 ? html`<${Empty}>No budgets set.</${Empty}>` : null}
      ${budgets.data?.data.length ? html`<div class="table-wrap"><table aria-label="Budgets"><thead><tr><th>Scope</th><th>For</th><th>Used</th><th>Share</th><th>State</th><th>Resets</th><th></th></tr></thead><tbody>
        ${budgets.data.data.map((b) => html`<${BudgetRow} b=${b} onRemove=${remove} />`)}
      </tbody></table></div>` : null}
      <form class="stack" aria-label="Set a budget" onSubmit=${save}>
        <div class="row">
          <label>Scope <select value=${draft.scope} onChange=${(e) => setDraft({ ...draft, scope: e.target.value })}><option value="user">User</option><option value="workspace">Workspace</option></select></label>
          <label>${draft.scope === 'user' ? 'User id' : 'Workspace id'} <input required value=${draft.targetId} onInput=${(e) => setDraft({ ...draft, targetId: e.target.value })} /></label>
          <label>Monthly tokens <input required type="number" min="1" step="1" value=${draft.monthlyTokens} onInput=${(e) => setDraft({ ...draft, monthlyTokens: e.target.value })} /></label>
        </div>
        <${ErrorBox} error=${action.error} />
        <div class="row"><button type="submit" disabled=${action.busy}>Set budget</button></div>
      </form>
    </section>`;
}
