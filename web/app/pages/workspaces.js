import { useState } from '/ui/vendor/preact-htm.js';
import { api, Empty, ErrorBox, html, Loading, useAction, useApi, when } from '../lib.js';

// Workspaces: the ones I belong to, a new one, invitations waiting for my
// address, and accepting one from the link in its mail (#/invite/<token>).

const SLUG = '[a-z0-9][a-z0-9\\-]{1,62}[a-z0-9]';

/** The token in an invitation link, or the token itself. */
const tokenOf = (text) => (/#\/invite\/([A-Za-z0-9_-]+)/.exec(text)?.[1] ?? text.trim());

export function WorkspacesPage({ onChanged }) {
  const list = useApi('/api/workspaces');
  const invites = useApi('/api/me/invites');
  const create = useAction();
  const [f, setF] = useState({ slug: '', name: '' });
  const [link, setLink] = useState('');
  const set = (k) => (e) => setF({ ...f, [k]: e.target.value });
  const shared = (list.data ?? []).filter((w) => !w.personal);
  return html`<h1>Workspaces</h1>
    <section class="card">
      <h2>Yours</h2>
      ${list.loading && !list.data ? html`<${Loading} what="Loading your workspaces" />` : null}
      <${ErrorBox} error=${list.error} />
      ${list.data && shared.length === 0 ? html`<${Empty}>No shared workspaces yet: make one below, or accept an invitation.</${Empty}>` : null}
      ${shared.length ? html`<div class="table-wrap"><table><thead><tr><th>Name</th><th>Slug</th><th>Your role</th><th></th></tr></thead><tbody>
        ${shared.map((w) => html`<tr data-workspace=${w.slug}>
          <td>${w.name}${w.archivedAt ? html` <span class="badge aborted">archived</span>` : null}</td>
          <td><code>${w.slug}</code></td><td>${w.role}</td>
          <td>${w.archivedAt ? null : html`<a href=${`#/w/${w.slug}`}>Open</a>`}</td></tr>`)}
      </tbody></table></div>` : null}
    </section>
    <section class="card stack" aria-label="Pending invitations">
      <h2>Invitations for you</h2>
      ${invites.loading && !invites.data ? html`<${Loading} what="Loading invitations" />` : null}
      <${ErrorBox} error=${invites.error} />
      ${invites.data?.length === 0 ? html`<${Empty}>No invitations are waiting for your address.</${Empty}>` : null}
      ${invites.data?.length ? html`<ul data-testid="pending-invites">${invites.data.map((i) => html`<li>
        <strong>${i.workspace.name}</strong> as ${i.role} <span class="muted">(until ${when(i.expiresAt)})</span></li>`)}</ul>
        <p class="muted">Open the link in the invitation mail to join, or paste it here.</p>` : null}
      <form class="row" onSubmit=${(e) => {
        e.preventDefault();
        location.hash = `#/invite/${tokenOf(link)}`;
      }}>
        <label class="inline">Invitation link <input name="inviteLink" required value=${link} onInput=${(e) => setLink(e.target.value)} /></label>
        <button type="submit" class="secondary">Open</button>
      </form>
    </section>
    <form class="card stack" onSubmit=${(e) => {
      e.preventDefault();
      create.run(async () => {
        const w = await api('/api/workspaces', { body: f });
        onChanged?.();
        location.hash = `#/w/${w.slug}`;
      });
    }}>
      <h2>New workspace</h2>
      <p class="muted">You become its owner. Its members share one agent.</p>
      <label>Name <input name="workspaceName" required maxlength="100" value=${f.name} onInput=${set('name')} /></label>
      <label>Slug (lowercase letters, digits and dashes; 3–64) <input name="slug" required pattern=${SLUG} value=${f.slug} onInput=${set('slug')} /></label>
      <${ErrorBox} error=${create.error} />
      <div class="row"><button type="submit" disabled=${create.busy}>Create workspace</button></div>
    </form>`;
}

export function InvitePage({ token, me, onChanged }) {
  const accept = useAction();
  const [joined, setJoined] = useState(null);
  return html`<h1>Invitation</h1>
    <section class="card stack">
      <p>You are signed in as <strong>${me.user.email ?? me.user.username}</strong>. The invitation works for the address it was sent to, once.</p>
      <${ErrorBox} error=${accept.error} />
      ${joined
        ? html`<p class="success" role="status">You joined <strong>${joined.workspace.name}</strong> as ${joined.role}. <a href=${`#/w/${joined.workspace.slug}`}>Open it</a>.</p>`
        : html`<div class="row"><button disabled=${accept.busy} onClick=${() => accept.run(async () => {
          setJoined(await api('/api/invites/accept', { body: { token } }));
          onChanged?.();
        })}>Accept invitation</button></div>`}
    </section>`;
}
