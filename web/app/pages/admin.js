import { useState } from '/ui/vendor/preact-htm.js';
import { api, Badge, Empty, ErrorBox, html, Loading, Pager, short, TemporalLink, useAction, useApi, when } from '../lib.js';

const SCOPES = ['agent', 'providers', 'tokens', 'admin', '*'];

/** One user as an admin sees them: agent, tokens (never a secret), recent audit; tokens issued and revoked here. */
function UserDetail({ id, onClose, onChange }) {
  const d = useApi(`/api/admin/users/${id}`);
  const act = useAction();
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState(['agent']);
  const [issued, setIssued] = useState(null);
  if (!d.data) return html`<section class="card">${d.loading ? html`<${Loading} what="Loading the user" />` : null}<${ErrorBox} error=${d.error} /></section>`;
  const { user, agent, tokens, audit } = d.data;
  const reload = async () => {
    await d.reload();
    await onChange();
  };
  return html`<section class="card stack" aria-label=${`User ${user.displayName}`}>
    <div class="row"><h2>${user.displayName}</h2><${Badge} status=${user.status} /><button class="secondary" onClick=${onClose}>Close</button></div>
    <p class="muted">${user.email ?? user.username} · ${user.role} · signs in with ${user.authSource} · since ${when(user.createdAt)}${user.suspendedAt ? ` · suspended ${when(user.suspendedAt)}` : ''}</p>
    <p>Agent: ${agent ? html`<${Badge} status=${agent.status} /> <${TemporalLink} workflowId=${`agent/${agent.id}`} url=${agent.temporalUrl} />` : html`<span class="muted">none yet</span>`}</p>
    <h3>Tokens</h3>
    ${tokens.length === 0 ? html`<${Empty}>No tokens.</${Empty}>` : html`<div class="table-wrap"><table aria-label="Tokens"><thead><tr><th>Name</th><th>Prefix</th><th>Scopes</th><th>Last used</th><th>Expires</th><th></th></tr></thead><tbody>
      ${tokens.map((t) => html`<tr><td>${t.name}</td><td><code>${t.prefix}</code></td><td>${t.scopes.join(', ')}</td><td>${when(t.lastUsedAt)}</td><td>${t.revokedAt ? `revoked ${when(t.revokedAt)}` : when(t.expiresAt)}</td>
        <td>${t.revokedAt ? null : html`<button class="danger" aria-label=${`Revoke token ${t.name}`} onClick=${() => act.run(async () => (await api(`/api/admin/users/${id}/tokens/${t.id}`, { method: 'DELETE' }), await reload()))}>Revoke</button>`}</td></tr>`)}
    </tbody></table></div>`}
    <form class="stack" aria-label="Issue a token" onSubmit=${(e) => {
      e.preventDefault();
      act.run(async () => {
        setIssued(await api(`/api/admin/users/${id}/tokens`, { body: { name, scopes } }));
        setName('');
        await reload();
      });
    }}>
      <label>Token name <input name="issueTokenName" required value=${name} onInput=${(e) => setName(e.target.value)} /></label>
      <fieldset class="row"><legend>Scopes</legend>${SCOPES.map((sc) => html`<label class="inline"><input type="checkbox" name=${`scope-${sc}`} checked=${scopes.includes(sc)}
        onChange=${(e) => setScopes(e.target.checked ? [...scopes, sc] : scopes.filter((x) => x !== sc))} /> ${sc === '*' ? 'everything' : sc}</label>`)}</fieldset>
      <div class="row"><button type="submit" disabled=${act.busy || scopes.length === 0 || user.status !== 'active'}>Issue token</button></div>
    </form>
    ${issued ? html`<div class="notice" role="status"><p>Give it to them now: it is shown only once.</p><p class="token mono" data-testid="issued-token">${issued.token}</p></div>` : null}
    <${ErrorBox} error=${act.error} />
    <h3>Recent audit</h3>
    ${audit.length === 0 ? html`<${Empty}>Nothing recorded.</${Empty}>` : html`<ul>${audit.map((a) => html`<li>${when(a.at)} · ${a.actorName ?? 'system'} · <code>${a.action}</code> · <code>${a.target}</code></li>`)}</ul>`}
    <p><a href=${`#/admin/audit`}>The whole audit log</a></p>
  </section>`;
}

// Admin: users (invite, role, suspend and reactivate, reset links, deactivate;
// a user's detail with tokens issued for them) and the fleet's agents (status and storage only).

export function AdminUsersPage({ me }) {
  const [page, setPage] = useState(1);
  const list = useApi(`/api/admin/users?page=${page}&limit=20`);
  const act = useAction();
  const [f, setF] = useState({ email: '', displayName: '', role: 'member' });
  const [invited, setInvited] = useState(null);
  const [selected, setSelected] = useState(null);
  const [notice, setNotice] = useState(null);
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
            <td><div class="row">
              <button class="secondary" aria-label=${`Details of ${u.displayName}`} onClick=${() => setSelected(u.id)}>Details</button>
              ${u.status === 'active' ? html`<button class="secondary" disabled=${self} aria-label=${`Suspend ${u.displayName}`}
                onClick=${() => confirm(`Suspend ${u.displayName}? Their sessions end, their tokens stop working and their agent stops until you reactivate them. Nothing is deleted.`) && change(() => api(`/api/admin/users/${u.id}/suspend`, { method: 'POST' }))}>Suspend</button>` : null}
              ${u.status === 'suspended' ? html`<button class="secondary" aria-label=${`Reactivate ${u.displayName}`} onClick=${() => change(() => api(`/api/admin/users/${u.id}/reactivate`, { method: 'POST' }))}>Reactivate</button>` : null}
              ${u.status !== 'deactivated' && u.email && (u.authSource === 'local' || u.authSource === 'breakglass') ? html`<button class="secondary" aria-label=${`Send ${u.displayName} a password reset link`}
                onClick=${() => act.run(async () => {
                  const r = await api(`/api/admin/users/${u.id}/password-reset`, { method: 'POST' });
                  setNotice(`Reset link sent to ${r.sentTo}; it works once, until ${when(r.expiresAt)}.`);
                })}>Send reset link</button>` : null}
              ${u.status !== 'deactivated' ? html`<button class="danger" disabled=${self} title=${self ? 'You cannot deactivate yourself' : undefined} aria-label=${`Deactivate ${u.displayName}`}
                onClick=${() => confirm(`Deactivate ${u.displayName}? Their sessions and tokens end for good and their agent stops.`) && change(() => api(`/api/admin/users/${u.id}/deactivate`, { method: 'POST' }))}>Deactivate</button>` : null}
              ${self ? html`<span class="muted"> you cannot deactivate yourself</span>` : null}
            </div></td>
          </tr>`;
        })}</tbody></table></div>` : null}
      <${Pager} meta=${list.data?.meta} page=${page} setPage=${setPage} />
      ${notice ? html`<p class="success" role="status">${notice}</p>` : null}
      <${ErrorBox} error=${act.error} />
    </section>
    ${selected ? html`<${UserDetail} key=${selected} id=${selected} onClose=${() => setSelected(null)} onChange=${list.reload} />` : null}
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
      ${list.data?.data.length ? html`<div class="table-wrap"><table><thead><tr><th>Owner</th><th>Status</th><th>Image</th><th>Storage</th><th>Updates</th><th>Last active</th><th>Workflow</th><th>Actions</th></tr></thead><tbody>
        ${list.data.data.map((a) => html`<tr>
          <td>${a.ownerName ?? a.ownerId} <span class="muted">(${a.ownerKind})</span></td>
          <td><${Badge} status=${a.status} />${a.statusReason ? html` <span class="muted">(${a.statusReason})</span>` : null}</td>
          <td><code>${a.image}</code> <code>${short(a.imageDigest)}</code></td>
          <td title=${a.storageMeasuredAt ? `measured ${when(a.storageMeasuredAt)}` : 'not measured yet'}>${storage(a)}</td>
          <td data-testid="update-mode">${a.updateMode}${a.preferredHourUtc !== null ? html` <span class="muted">at ${String(a.preferredHourUtc).padStart(2, '0')}:00 UTC</span>` : null}${a.updateAvailable ? html` <${Badge} status="update_available" />` : null}</td>
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

/** System agents: the instance's own, always on; made with one of your providers. */
export function SystemAgentsPage() {
  const list = useApi('/api/admin/system-agents');
  const providers = useApi('/api/me/providers');
  const act = useAction();
  const [f, setF] = useState({ name: '', role: '', providerId: '', primaryModel: '' });
  const set = (k) => (e) => setF({ ...f, [k]: e.target.value });
  const mine = Array.isArray(providers.data) ? providers.data : (providers.data?.data ?? []);
  return html`<h1>System agents</h1>
    <section class="card">
      <p class="muted">Owned by the instance and always on. Removing one stops it and deletes its settings; its volume is kept.</p>
      ${list.loading && !list.data ? html`<${Loading} what="Loading system agents" />` : null}
      <${ErrorBox} error=${list.error} />
      ${list.data?.data.length === 0 ? html`<${Empty}>No system agents.</${Empty}>` : null}
      ${list.data?.data.length ? html`<div class="table-wrap"><table aria-label="System agents"><thead><tr><th>Name</th><th>Role</th><th>Model</th><th>Status</th><th>Workflow</th><th></th></tr></thead><tbody>
        ${list.data.data.map((a) => html`<tr data-system-agent=${a.name}>
          <td>${a.name}</td><td>${a.role ?? '—'}</td><td><code>${a.primaryModel ?? '—'}</code></td>
          <td><${Badge} status=${a.status} />${a.statusReason ? html` <span class="muted">(${a.statusReason})</span>` : null}</td>
          <td><${TemporalLink} workflowId=${a.workflowId} url=${a.temporalUrl} /></td>
          <td><button class="danger" disabled=${act.busy} aria-label=${`Remove ${a.name}`} onClick=${() => confirm(`Remove the system agent ${a.name}? It stops and its settings are deleted; its volume is kept.`) && act.run(async () => {
            await api(`/api/admin/system-agents/${a.id}`, { method: 'DELETE' });
            await list.reload();
          })}>Remove</button></td></tr>`)}
      </tbody></table></div>` : null}
      <div class="row"><button class="secondary" onClick=${list.reload}>Refresh</button></div>
    </section>
    <form class="card stack" aria-label="New system agent" onSubmit=${(e) => {
      e.preventDefault();
      act.run(async () => {
        await api('/api/admin/system-agents', { body: { ...f, providerId: f.providerId || mine[0]?.id } });
        setF({ name: '', role: '', providerId: '', primaryModel: '' });
        await list.reload();
      });
    }}>
      <h2>New system agent</h2>
      <label>Name (lowercase letters, digits, dashes) <input name="systemAgentName" required pattern="[a-z0-9][a-z0-9\\-]{0,40}" value=${f.name} onInput=${set('name')} /></label>
      <label>Role (its personality) <textarea name="systemAgentRole" required value=${f.role} onInput=${set('role')}></textarea></label>
      <label>Provider <select name="systemAgentProvider" value=${f.providerId || mine[0]?.id || ''} onChange=${set('providerId')}>
        ${mine.map((p) => html`<option value=${p.id}>${p.displayName} (${p.name})</option>`)}</select></label>
      ${providers.data && mine.length === 0 ? html`<p class="muted">Add a provider in <a href="#/settings">Settings</a> first.</p>` : null}
      <label>Primary model <input name="systemAgentModel" required placeholder="provider/model" value=${f.primaryModel} onInput=${set('primaryModel')} /></label>
      <${ErrorBox} error=${act.error} />
      <div class="row"><button type="submit" disabled=${act.busy || mine.length === 0}>Create system agent</button></div>
    </form>`;
}
