import { useEffect, useState } from '/ui/vendor/preact-htm.js';
import { api, Badge, Empty, ErrorBox, html, Loading, short, TemporalLink, useAction, useApi, useInterval, when } from '../lib.js';
import { ChatPage } from './chat.js';
import { ProviderForm } from './settings.js';

// One shared workspace: its agent (status, start and stop, chat), its members
// (roles, invitations, "provisioning" until the agent has them) and its
// settings. What the page offers follows the caller's role; the API decides.

const RANK = { viewer: 0, member: 1, admin: 2, owner: 3 };
const atLeast = (role, need) => RANK[role] >= RANK[need];
const ROLES = ['owner', 'admin', 'member', 'viewer'];

export function WorkspacePage({ me, slug, tab = 'agent', config, onChanged }) {
  // Asked again on every tab: someone else may have started the agent meanwhile.
  const ws = useApi(`/api/workspaces/${slug}`, [tab]);
  if (ws.loading && !ws.data) return html`<${Loading} what="Loading the workspace" />`;
  if (ws.error) return html`<h1>Workspace</h1><${ErrorBox} error=${ws.error} /><p><a href="#/workspaces">Your workspaces</a></p>`;
  const w = ws.data;
  const tabs = [['agent', 'Agent'], ['members', 'Members'], ['settings', 'Settings']];
  return html`<h1>${w.name} <span class="muted">(${w.role})</span></h1>
    <nav class="row tabs" aria-label="Workspace sections">
      ${tabs.map(([id, label]) => html`<a href=${`#/w/${slug}${id === 'agent' ? '' : `/${id}`}`} aria-current=${tab === id ? 'page' : undefined}>${label}</a>`)}
    </nav>
    ${tab === 'members' ? html`<${Members} slug=${slug} role=${w.role} me=${me} agentExists=${Boolean(w.agentId)} onChanged=${onChanged} />` : null}
    ${tab === 'settings' ? html`<${Settings} slug=${slug} workspace=${w} onChanged=${() => (ws.reload(), onChanged?.())} />` : null}
    ${tab === 'agent' ? html`<${WorkspaceAgent} slug=${slug} role=${w.role} me=${me} config=${config} exists=${Boolean(w.agentId)} onCreated=${ws.reload} />` : null}`;
}

function WorkspaceAgent({ slug, role, me, config, exists, onCreated }) {
  // Asked only once it exists: before the first start there is nothing to show but the button.
  const agent = useApi(exists ? `/api/workspaces/${slug}/agent` : null);
  const members = useApi(`/api/workspaces/${slug}/members`);
  const act = useAction();
  const a = agent.data;
  const missing = !exists || agent.error?.status === 404;
  const settling = a && ['starting', 'stopping', 'updating'].includes(a.status);
  const syncing = a && (a.members.provisioned < a.members.total || a.members.sync?.status === 'retrying');
  useInterval(agent.reload, 2000, Boolean(settling || syncing));
  const names = Object.fromEntries((members.data ?? []).map((m) => [m.userId, m.displayName]));
  const run = (what) => act.run(async () => {
    await api(`/api/workspaces/${slug}/agent/${what}`, { method: 'POST' });
    if (exists) await agent.reload();
    else onCreated();
  });
  const canRun = atLeast(role, 'member');
  return html`<section class="card stack">
      <h2>Shared agent</h2>
      ${agent.loading && !a && !missing ? html`<${Loading} what="Loading the agent" />` : null}
      ${agent.error && !missing ? html`<${ErrorBox} error=${agent.error} />` : null}
      <div class="row"><strong>Status:</strong> <span data-testid="workspace-agent-status" aria-live="polite">${a ? html`<${Badge} status=${a.status} />` : 'not created yet'}</span>
        ${a?.statusReason ? html`<span class="muted">(${a.statusReason})</span>` : null}</div>
      ${a ? html`<p class="muted">Image <code>${a.image}</code> · digest <code>${short(a.imageDigest)}</code> · last active ${when(a.lastActiveAt)}</p>
        ${a.members.sync?.status === 'unsupported'
          // OpenClaw keeps no member list: it tells speakers apart by the session Hangar names for each of them.
          ? html`<p class="muted" data-testid="member-provisioning">This runtime keeps no member list; each member talks to it in their own session.</p>`
          : html`<p data-testid="member-provisioning">${a.members.provisioned} of ${a.members.total} members provisioned in the agent
          ${a.members.provisioned < a.members.total ? html` <${Badge} status=${a.members.sync?.status === 'retrying' ? 'provisioning (retrying)' : 'provisioning'} />` : null}
          ${a.members.sync?.lastError ? html` <span class="muted">(${a.members.sync.lastError})</span>` : null}</p>`}` : null}
      ${canRun ? html`<div class="row">
        <button disabled=${act.busy || a?.status === 'running'} onClick=${() => run('start')}>${act.busy ? 'Working…' : 'Start'}</button>
        <button class="secondary" disabled=${act.busy || !a || a.status === 'stopped'} onClick=${() => run('stop')}>Stop</button>
      </div>` : html`<p class="muted">As a viewer you read the agent and its history; members start it and chat.</p>`}
      <${ErrorBox} error=${act.error} />
      ${a ? html`<${TemporalLink} config=${config} workflowId=${a.workflowId} url=${a.temporalUrl} />` : null}
    </section>
    ${a ? html`<${ChatPage} me=${me} agentId=${a.id} readOnly=${!canRun} names=${names} title=${canRun ? 'Chat with the shared agent' : 'Shared history'} />`
      : canRun ? html`<p class="muted">Start the agent (or send it a first message once it exists) to chat.</p>` : null}`;
}

function Members({ slug, role, me, agentExists, onChanged }) {
  const list = useApi(`/api/workspaces/${slug}/members`);
  const admin = atLeast(role, 'admin');
  // Until the agent has confirmed everyone, look again every few seconds.
  useInterval(list.reload, 3000, Boolean(agentExists && list.data?.some((m) => !m.provisioned)));
  const invites = useApi(admin ? `/api/workspaces/${slug}/invites` : null);
  const act = useAction();
  const [f, setF] = useState({ email: '', role: 'member' });
  const [sent, setSent] = useState(null);
  const change = (fn) => act.run(async () => {
    await fn();
    await Promise.all([list.reload(), admin ? invites.reload() : null]);
  });
  const leave = () => act.run(async () => {
    await api(`/api/workspaces/${slug}/members/${me.user.id}`, { method: 'DELETE' });
    onChanged?.();
    location.hash = '#/workspaces';
  });
  // What this caller may offer: owners anything; admins members and viewers (never owners, never themselves up).
  const offered = (m) => ROLES.filter((r) => role === 'owner' || (r !== 'owner' && !(m.userId === me.user.id && RANK[r] > RANK[role])));
  const editable = (m) => admin && (role === 'owner' || m.role !== 'owner');
  return html`<section class="card">
      <h2>Members</h2>
      ${list.loading && !list.data ? html`<${Loading} what="Loading members" />` : null}
      <${ErrorBox} error=${list.error} />
      ${list.data ? html`<div class="table-wrap"><table><thead><tr><th>Name</th><th>Email</th><th>Role</th><th>Joined</th><th>Agent</th><th>Actions</th></tr></thead><tbody>
        ${list.data.map((m) => html`<tr data-member=${m.email ?? m.userId}>
          <td>${m.displayName}${m.userId === me.user.id ? html` <span class="muted">(you)</span>` : null}</td>
          <td>${m.email ?? '—'}</td>
          <td>${editable(m) ? html`<select aria-label=${`Role of ${m.displayName}`} value=${m.role} onChange=${(e) => change(() => api(`/api/workspaces/${slug}/members/${m.userId}`, { method: 'PUT', body: { role: e.target.value } }))}>
              ${offered(m).map((r) => html`<option value=${r}>${r}</option>`)}</select>` : m.role}</td>
          <td>${when(m.joinedAt)}</td>
          <td>${!agentExists ? html`<span class="muted">no agent yet</span>` : m.provisioned ? html`<${Badge} status="ok" />` : html`<${Badge} status="provisioning" />`}</td>
          <td>${m.userId === me.user.id
            ? html`<button class="secondary" onClick=${() => confirm('Leave this workspace?') && leave()}>Leave</button>`
            : editable(m) ? html`<button class="danger" aria-label=${`Remove ${m.displayName}`} onClick=${() => confirm(`Remove ${m.displayName}?`) && change(() => api(`/api/workspaces/${slug}/members/${m.userId}`, { method: 'DELETE' }))}>Remove</button>` : null}</td>
        </tr>`)}</tbody></table></div>` : null}
      <${ErrorBox} error=${act.error} />
    </section>
    ${admin ? html`<section class="card stack" aria-label="Invitations">
      <h2>Invite someone</h2>
      <form class="stack" onSubmit=${(e) => {
        e.preventDefault();
        act.run(async () => {
          setSent(await api(`/api/workspaces/${slug}/invites`, { body: f }));
          setF({ email: '', role: 'member' });
          await invites.reload();
        });
      }}>
        <label>Email <input name="inviteEmail" type="email" required value=${f.email} onInput=${(e) => setF({ ...f, email: e.target.value })} /></label>
        <label>Role <select name="inviteRole" value=${f.role} onChange=${(e) => setF({ ...f, role: e.target.value })}>
          ${ROLES.filter((r) => role === 'owner' || r !== 'owner').map((r) => html`<option value=${r}>${r}</option>`)}</select></label>
        <div class="row"><button type="submit" disabled=${act.busy}>Send invitation</button></div>
      </form>
      ${sent ? html`<div class="success" role="status" data-testid="invite-sent">${sent.mailed ? 'Mailed.' : 'Not mailed (no SMTP relay configured): pass the link on yourself.'} The link works once, until ${when(sent.expiresAt)}:
        <code class="token">${`${location.origin}/#/invite/${sent.token}`}</code></div>` : null}
      <h3>Pending</h3>
      ${invites.data?.length === 0 ? html`<${Empty}>No pending invitations.</${Empty}>` : null}
      ${invites.data?.length ? html`<ul>${invites.data.map((i) => html`<li>${i.emailHint} as ${i.role}, until ${when(i.expiresAt)}
        <button class="secondary" aria-label=${`Revoke the invitation of ${i.emailHint}`} onClick=${() => change(() => api(`/api/workspaces/${slug}/invites/${i.id}`, { method: 'DELETE' }))}>Revoke</button></li>`)}</ul>` : null}
    </section>` : null}`;
}

function Settings({ slug, workspace, onChanged }) {
  const admin = atLeast(workspace.role, 'admin');
  const cfg = useApi(`/api/workspaces/${slug}/agent-config`);
  const providers = useApi(admin ? `/api/workspaces/${slug}/providers` : null);
  const act = useAction();
  const [name, setName] = useState(workspace.name);
  const [f, setF] = useState(null);
  const [saved, setSaved] = useState(null);
  useEffect(() => {
    if (cfg.data) setF({ providerId: cfg.data.providerId ?? '', primaryModel: cfg.data.primaryModel ?? '', personality: cfg.data.personality ?? '' });
  }, [cfg.data]);
  const list = admin && Array.isArray(providers.data) ? providers.data : [];
  return html`${admin ? html`<form class="card stack" onSubmit=${(e) => {
      e.preventDefault();
      act.run(async () => (await api(`/api/workspaces/${slug}`, { method: 'PATCH', body: { name } }), onChanged()));
    }}>
      <h2>Name</h2>
      <label>Workspace name <input name="renameWorkspace" required value=${name} onInput=${(e) => setName(e.target.value)} /></label>
      <div class="row"><button type="submit" disabled=${act.busy}>Rename</button></div>
    </form>` : null}
    <form class="card stack" onSubmit=${(e) => {
      e.preventDefault();
      act.run(async () => {
        const out = await api(`/api/workspaces/${slug}/agent-config`, { method: 'PUT', body: { providerId: f.providerId || null, primaryModel: f.primaryModel || null, fallbackModels: cfg.data?.fallbackModels ?? [], personality: f.personality || null } });
        setSaved(out.restart);
      });
    }}>
      <h2>Agent config</h2>
      ${cfg.loading && !f ? html`<${Loading} what="Loading the config" />` : null}
      <${ErrorBox} error=${cfg.error} />
      ${f ? html`<fieldset disabled=${!admin} class="stack">
        <label>Provider <select name="workspaceProvider" aria-label="Workspace agent provider" value=${f.providerId} onChange=${(e) => setF({ ...f, providerId: e.target.value })}>
          <option value="">(none)</option>${list.map((p) => html`<option value=${p.id}>${p.displayName} (${p.name})</option>`)}</select></label>
        <label>Primary model (<code>provider/model</code>) <input name="workspacePrimaryModel" value=${f.primaryModel} onInput=${(e) => setF({ ...f, primaryModel: e.target.value })} /></label>
        <label>Personality <textarea name="workspacePersonality" value=${f.personality} onInput=${(e) => setF({ ...f, personality: e.target.value })}></textarea></label>
        ${admin ? html`<div class="row"><button type="submit" disabled=${act.busy}>Save agent config</button></div>` : html`<p class="muted">Owners and admins change it.</p>`}
      </fieldset>` : null}
      ${saved ? html`<p class="success" role="status" data-testid="workspace-config-result">${saved === 'scheduled' ? 'Saved. The running agent restarts to pick it up.' : 'Saved. It applies when the agent next starts.'}</p>` : null}
    </form>
    ${admin ? html`<section class="card stack">
      <h2>Providers</h2>
      <p class="muted">The workspace's own keys: stored encrypted and never shown again, to anyone.</p>
      ${list.length ? html`<ul>${list.map((p) => html`<li data-provider=${p.name}>${p.displayName} <code>${p.name}</code> · ${p.type} · ${p.hasApiKey ? 'key set' : 'no key'} · ${p.models.map((m) => m.id).join(', ') || 'no models'}</li>`)}</ul>` : html`<${Empty}>No providers yet.</${Empty}>`}
      <${ProviderForm} busy=${act.busy} onSubmit=${(body) => act.run(async () => (await api(`/api/workspaces/${slug}/providers`, { body }), await providers.reload()))} />
    </section>` : null}
    <${ErrorBox} error=${act.error} />
    ${workspace.role === 'owner' ? html`<section class="card stack">
      <h2>Archive</h2>
      <p class="muted">Stops the agent and ends every member's access; owners can still read it.</p>
      <div class="row"><button class="danger" disabled=${act.busy} onClick=${() => confirm('Archive this workspace?') && act.run(async () => {
        await api(`/api/workspaces/${slug}/archive`, { method: 'POST' });
        onChanged();
        location.hash = '#/workspaces';
      })}>Archive workspace</button></div>
    </section>` : null}`;
}
