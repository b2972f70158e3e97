import { useState } from '/ui/vendor/preact-htm.js';
import { api, Badge, Empty, ErrorBox, html, Loading, Pager, short, TemporalLink, useAction, useApi, when } from '../lib.js';

// Admin: users (invite, role, deactivate) and the fleet's agents (status and storage only).

export function AdminUsersPage({ me }) {
  const [page, setPage] = useState(1);
  const list = useApi(`/api/admin/users?page=${page}&limit=20`);
  const act = useAction();
  const [f, setF] = useState({ email: '', displayName: '', role: 'member' });
  const [invited, setInvited] = useState(null);
  const set = (k) => (e) => setF({ ...f, [k]: e.target.value });
  const change = (fn) => act.run(async () => {
    await fn();
    await list.reload();
  });
  return html`<h1>Users</h1>
    <section class="card">
      ${list.loading && !list.data ? html`<${Loading} what="Loading users" />` : null}
      <${ErrorBox} error=${list.error} />
      ${list.data?.data.length === 0 ? html`<${Empty}>No users.</${Empty}>` : null}
      ${list.data?.data.length ? html`<div class="table-wrap"><table><thead><tr><th>Name</th><th>Email / username</th><th>Role</th><th>Status</th><th>Actions</th></tr></thead><tbody>
        ${list.data.data.map((u) => {
          const self = u.id === me.user.id;
          return html`<tr data-user=${u.email ?? u.username}>
            <td>${u.displayName}${self ? html` <span class="muted">(you)</span>` : null}</td>
            <td>${u.email ?? u.username ?? '—'}</td>
            <td><label class="inline"><span class="sr">Role of ${u.displayName}</span>
              <select aria-label=${`Role of ${u.displayName}`} value=${u.role} disabled=${self || u.status !== 'active'} onChange=${(e) => change(() => api(`/api/admin/users/${u.id}`, { method: 'PATCH', body: { role: e.target.value } }))}>
                <option value="member">member</option><option value="admin">admin</option>
              </select></label></td>
            <td><${Badge} status=${u.status} /></td>
            <td>${u.status === 'active' ? html`<button class="danger" disabled=${self} title=${self ? 'You cannot deactivate yourself' : undefined} aria-label=${`Deactivate ${u.displayName}`}
              onClick=${() => confirm(`Deactivate ${u.displayName}? Their sessions and tokens end now and their agent stops.`) && change(() => api(`/api/admin/users/${u.id}/deactivate`, { method: 'POST' }))}>Deactivate</button>` : null}
              ${self ? html`<span class="muted"> you cannot deactivate yourself</span>` : null}</td>
          </tr>`;
        })}</tbody></table></div>` : null}
      <${Pager} meta=${list.data?.meta} page=${page} setPage=${setPage} />
      <${ErrorBox} error=${act.error} />
    </section>
    <form class="card stack" onSubmit=${(e) => {
      e.preventDefault();
      act.run(async () => {
        setInvited(await api('/api/admin/users', { body: f }));
        setF({ email: '', displayName: '', role: 'member' });
        await list.reload();
      });
    }}>
      <h2>Invite a user</h2>
      <p class="muted">They sign in with single sign-on using this email; no password is set.</p>
      <label>Email <input name="email" type="email" required value=${f.email} onInput=${set('email')} /></label>
      <label>Display name <input name="displayName" required value=${f.displayName} onInput=${set('displayName')} /></label>
      <label>Role <select name="role" value=${f.role} onChange=${set('role')}><option value="member">member</option><option value="admin">admin</option></select></label>
      ${invited ? html`<p class="success" role="status">Invited ${invited.email}.</p>` : null}
      <div class="row"><button type="submit" disabled=${act.busy}>Invite</button></div>
    </form>`;
}

const mb = (bytes) => `${(bytes / 1048576).toFixed(bytes < 10 * 1048576 ? 1 : 0)} MB`;
/** "12.3 MB of 1024 MB", marked when over the cap (the reconciler stops such an agent). */
function storage(a) {
  if (a.storageBytes === null || a.storageBytes === undefined) return html`<span class="muted">—</span>`;
  const text = `${mb(a.storageBytes)} of ${mb(a.storageCapBytes)}`;
  return a.storageBytes > a.storageCapBytes ? html`<strong>${text} (over the cap)</strong>` : text;
}

export function AdminAgentsPage() {
  const [page, setPage] = useState(1);
  const list = useApi(`/api/admin/agents?page=${page}&limit=50`);
  const act = useAction();
  return html`<h1>Agents</h1>
    <section class="card">
      <p class="muted">Status only: admins never see another user's config, keys or chats.</p>
      ${list.loading && !list.data ? html`<${Loading} what="Loading agents" />` : null}
      <${ErrorBox} error=${list.error} />
      ${list.data?.data.length === 0 ? html`<${Empty}>No agents yet.</${Empty}>` : null}
      ${list.data?.data.length ? html`<div class="table-wrap"><table><thead><tr><th>Owner</th><th>Status</th><th>Image</th><th>Storage</th><th>Last active</th><th>Workflow</th><th>Actions</th></tr></thead><tbody>
        ${list.data.data.map((a) => html`<tr>
          <td>${a.ownerName ?? a.ownerId} <span class="muted">(${a.ownerKind})</span></td>
          <td><${Badge} status=${a.status} />${a.statusReason ? html` <span class="muted">(${a.statusReason})</span>` : null}</td>
          <td><code>${a.image}</code> <code>${short(a.imageDigest)}</code></td>
          <td title=${a.storageMeasuredAt ? `measured ${when(a.storageMeasuredAt)}` : 'not measured yet'}>${storage(a)}</td>
          <td>${when(a.lastActiveAt)}</td>
          <td><${TemporalLink} workflowId=${a.workflowId} url=${a.temporalUrl} /></td>
          <td><div class="row">
            <button class="secondary" disabled=${act.busy} onClick=${() => act.run(async () => (await api(`/api/admin/agents/${a.id}/restart`, { method: 'POST' }), await list.reload()))}>Restart</button>
            <button class="secondary" disabled=${act.busy || a.status === 'stopped'} onClick=${() => act.run(async () => (await api(`/api/admin/agents/${a.id}/stop`, { method: 'POST' }), await list.reload()))}>Stop</button>
          </div></td></tr>`)}
      </tbody></table></div>` : null}
      <${Pager} meta=${list.data?.meta} page=${page} setPage=${setPage} />
      <${ErrorBox} error=${act.error} />
    </section>`;
}
