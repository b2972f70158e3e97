import { useState } from '/ui/vendor/preact-htm.js';
import { api, Badge, Empty, ErrorBox, html, Loading, Pager, TemporalLink, useAction, useApi, when } from '../lib.js';

// Admin: federation. This instance's identity (what a peer pins), its peers
// (added by URL and the fingerprint the admin expects), and the agents it
// runs on peers — spawned, watched and killed by signed commands. Only status
// comes back from a peer: never its keys, configs or chats.

const DIRECTIONS = {
  both: 'both ways',
  outbound: 'we send commands to it',
  inbound: 'it may send commands to us',
};
const ENDED = ['stopped', 'removed', 'refused', 'error'];

function Identity() {
  const id = useApi('/api/federation/identity');
  return html`<section class="card">
    <h2>This instance</h2>
    ${id.loading && !id.data ? html`<${Loading} what="Loading the identity" />` : null}
    <${ErrorBox} error=${id.error} />
    ${id.data ? html`<dl class="facts">
      <dt>Name</dt><dd>${id.data.name}</dd>
      <dt>URL</dt><dd><code>${id.data.url}</code></dd>
      <dt>Instance id</dt><dd><code>${id.data.instanceId}</code></dd>
      <dt>Key fingerprint</dt><dd><code data-fingerprint>${id.data.fingerprint}</code></dd>
    </dl>
    <p class="muted">A peer's admin adds this instance with its URL and this fingerprint. <code>hangar federation rotate-key</code> replaces the key; peers learn the new one from the next signed message.</p>` : null}
  </section>`;
}

function AddPeer({ onAdded }) {
  const act = useAction();
  const empty = { name: '', url: '', fingerprint: '', direction: 'both', agentLimit: '5' };
  const [f, setF] = useState(empty);
  const set = (k) => (e) => setF({ ...f, [k]: e.target.value });
  return html`<form class="card stack" onSubmit=${(e) => {
    e.preventDefault();
    act.run(async () => {
      await api('/api/admin/federation/peers', { body: { name: f.name, url: f.url, fingerprint: f.fingerprint, direction: f.direction, agentLimit: Number(f.agentLimit) } });
      setF(empty);
      await onAdded();
    });
  }}>
    <h2>Add a peer</h2>
    <p class="muted">Hangar fetches the peer's identity and refuses it unless its key has the fingerprint you expect (ask the peer's admin; their Federation page shows it).</p>
    <label>Name <input name="name" required maxlength="100" value=${f.name} onInput=${set('name')} /></label>
    <label>URL <input name="url" type="url" required placeholder="https://hangar.example.org" value=${f.url} onInput=${set('url')} /></label>
    <label>Expected key fingerprint <input name="fingerprint" required pattern="SHA256:[A-Za-z0-9+\\/]+" placeholder="SHA256:…" value=${f.fingerprint} onInput=${set('fingerprint')} /></label>
    <label>Direction <select name="direction" value=${f.direction} onChange=${set('direction')}>
      ${Object.entries(DIRECTIONS).map(([v, label]) => html`<option value=${v}>${label}</option>`)}
    </select></label>
    <label>Agents it may run here <input name="agentLimit" type="number" min="0" max="1000" required value=${f.agentLimit} onInput=${set('agentLimit')} /></label>
    <${ErrorBox} error=${act.error} />
    <div class="row"><button type="submit" disabled=${act.busy}>Add peer</button></div>
  </form>`;
}

function Spawn({ peers, onSpawned }) {
  const act = useAction();
  const targets = peers.filter((p) => p.direction !== 'inbound');
  const [f, setF] = useState({ peerId: '', name: '', primaryModel: '' });
  const set = (k) => (e) => setF({ ...f, [k]: e.target.value });
  if (targets.length === 0) return null;
  const peerId = f.peerId || targets[0].id;
  return html`<form class="card stack" onSubmit=${(e) => {
    e.preventDefault();
    act.run(async () => {
      await api(`/api/admin/federation/peers/${peerId}/agents`, { body: { name: f.name, ...(f.primaryModel ? { primaryModel: f.primaryModel } : {}) } });
      setF({ ...f, name: '', primaryModel: '' });
      await onSpawned();
    });
  }}>
    <h2>Run an agent on a peer</h2>
    <p class="muted">The peer receives the name and the model preference, nothing else; it runs the agent under its own limits and keys.</p>
    <label>Peer <select name="peerId" value=${peerId} onChange=${set('peerId')}>
      ${targets.map((p) => html`<option value=${p.id}>${p.name}</option>`)}
    </select></label>
    <label>Agent name <input name="agentName" required maxlength="100" value=${f.name} onInput=${set('name')} /></label>
    <label>Primary model (optional) <input name="primaryModel" maxlength="200" pattern="[A-Za-z0-9._:\\/\\-]+" value=${f.primaryModel} onInput=${set('primaryModel')} /></label>
    <${ErrorBox} error=${act.error} />
    <div class="row"><button type="submit" disabled=${act.busy}>Spawn</button></div>
  </form>`;
}

export function FederationPage() {
  const [page, setPage] = useState(1);
  const peers = useApi('/api/admin/federation/peers');
  const agents = useApi(`/api/admin/federation/agents?page=${page}&limit=50`);
  const act = useAction();
  const reload = async () => {
    await Promise.all([peers.reload(), agents.reload()]);
  };
  const peerList = peers.data?.data ?? [];
  return html`<h1>Federation</h1>
    <${Identity} />
    <section class="card">
      <h2>Peers</h2>
      ${peers.loading && !peers.data ? html`<${Loading} what="Loading peers" />` : null}
      <${ErrorBox} error=${peers.error} />
      ${peers.data && peerList.length === 0 ? html`<${Empty}>No peers yet.</${Empty}>` : null}
      ${peerList.length ? html`<div class="table-wrap"><table><thead><tr><th>Name</th><th>URL</th><th>Fingerprint</th><th>Direction</th><th>Agent limit</th><th>Last seen</th><th>Actions</th></tr></thead><tbody>
        ${peerList.map((p) => html`<tr data-peer=${p.name}>
          <td>${p.name}</td>
          <td><code>${p.url}</code></td>
          <td><code>${p.fingerprint}</code></td>
          <td>${DIRECTIONS[p.direction] ?? p.direction}</td>
          <td>${p.agentLimit}</td>
          <td>${when(p.lastSeenAt)}</td>
          <td><button class="danger" disabled=${act.busy} aria-label=${`Remove peer ${p.name}`}
            onClick=${() => confirm(`Remove ${p.name}? The agents this instance runs there are killed, and those it runs here are stopped and removed.`) && act.run(async () => (await api(`/api/admin/federation/peers/${p.id}`, { method: 'DELETE' }), await reload()))}>Remove</button></td>
        </tr>`)}
      </tbody></table></div>` : null}
    </section>
    <section class="card">
      <h2>Agents on peers</h2>
      ${agents.loading && !agents.data ? html`<${Loading} what="Loading remote agents" />` : null}
      <${ErrorBox} error=${agents.error} />
      ${agents.data?.data.length === 0 ? html`<${Empty}>No agents on peers.</${Empty}>` : null}
      ${agents.data?.data.length ? html`<div class="table-wrap"><table><thead><tr><th>Name</th><th>Peer</th><th>Status</th><th>Model</th><th>Last report</th><th>Workflow</th><th>Actions</th></tr></thead><tbody>
        ${agents.data.data.map((a) => html`<tr data-remote-agent=${a.name}>
          <td>${a.name}</td>
          <td>${a.peerName ?? html`<span class="muted">removed</span>`}</td>
          <td><${Badge} status=${a.status} />${a.statusReason ? html` <span class="muted">(${a.statusReason})</span>` : null}</td>
          <td>${a.primaryModel ?? html`<span class="muted">peer's default</span>`}</td>
          <td>${when(a.lastSeenAt)}</td>
          <td><${TemporalLink} workflowId=${a.workflowId} url=${a.temporalUrl} /></td>
          <td><button class="danger" disabled=${act.busy || ENDED.includes(a.status) || a.status === 'stopping'} aria-label=${`Kill ${a.name}`}
            onClick=${() => confirm(`Kill ${a.name}? The peer stops and removes it.`) && act.run(async () => (await api(`/api/admin/federation/agents/${a.id}`, { method: 'DELETE' }), await agents.reload()))}>Kill</button></td>
        </tr>`)}
      </tbody></table></div>` : null}
      <div class="row"><button class="secondary" disabled=${agents.loading} onClick=${() => agents.reload()}>Refresh</button></div>
      <${Pager} meta=${agents.data?.meta} page=${page} setPage=${setPage} />
      <${ErrorBox} error=${act.error} />
    </section>
    <${Spawn} peers=${peerList} onSpawned=${() => agents.reload()} />
    <${AddPeer} onAdded=${reload} />`;
}
