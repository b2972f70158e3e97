// Hangar's web UI: hash routes, the signed-in shell, and the first-boot wizard.
import { html, render, useEffect, useState } from '/ui/vendor/preact-htm.js';
import { api, ErrorBox, Loading, setCsrf, useApi } from './lib.js';
import { LoginPage, ResetPasswordPage } from './pages/login.js';
import { OnboardingPage } from './pages/onboarding.js';
import { AgentPage } from './pages/agent.js';
import { ChatPage } from './pages/chat.js';
import { SettingsPage } from './pages/settings.js';
import { AdminAgentsPage, AdminUsersPage, SystemAgentsPage } from './pages/admin.js';
import { SignInSettingsPage } from './pages/admin-sign-in.js';
import { AuditPage } from './pages/audit.js';
import { FleetEventsPage, FleetSettingsPage, RolloutPage, RolloutsPage } from './pages/fleet.js';
import { WorkspacePage } from './pages/workspace.js';
import { InvitePage, WorkspacesPage } from './pages/workspaces.js';
import { FederationPage } from './pages/federation.js';
import { AdminUsagePage, MyUsagePage } from './pages/usage.js';

const ROUTES = [
  { path: '/agent', title: 'My agent', page: AgentPage },
  { path: '/chat', title: 'Chat', page: ChatPage },
  { path: '/usage', title: 'Usage', page: MyUsagePage },
  { path: '/settings', title: 'Settings', page: SettingsPage },
  { path: '/workspaces', title: 'Workspaces', page: WorkspacesPage },
  { path: '/admin/users', title: 'Users', page: AdminUsersPage, admin: true },
  { path: '/admin/agents', title: 'Agents', page: AdminAgentsPage, admin: true },
  { path: '/admin/fleet', title: 'Fleet settings', page: FleetSettingsPage, admin: true },
  { path: '/admin/rollouts', title: 'Rollouts', page: RolloutsPage, admin: true },
  { path: '/admin/events', title: 'Fleet events', page: FleetEventsPage, admin: true },
  { path: '/admin/federation', title: 'Federation', page: FederationPage, admin: true },
  { path: '/admin/system-agents', title: 'System agents', page: SystemAgentsPage, admin: true },
  { path: '/admin/sign-in', title: 'Sign-in', page: SignInSettingsPage, admin: true },
  { path: '/admin/audit', title: 'Audit log', page: AuditPage, admin: true },
  { path: '/admin/usage', title: 'Usage and budgets', page: AdminUsagePage, admin: true },
];

/** The token of an admin's reset link (#/reset-password/<token>), signed in or not. */
const resetToken = () => /^#\/reset-password\/([A-Za-z0-9_-]{20,200})$/.exec(location.hash)?.[1] ?? null;

function useHash() {
  const current = () => (location.hash.slice(1) || '/').replace(/^\/?$/, '/agent');
  const [hash, setHash] = useState(current());
  useEffect(() => {
    const on = () => setHash(current());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

/** Which workspace the page is in: a shared one's agent, or (anything else) the personal side. */
function WorkspaceSwitcher({ workspaces, current }) {
  const shared = (workspaces ?? []).filter((w) => !w.personal && !w.archivedAt);
  return html`<label class="inline switcher"><span class="sr">Workspace</span>
    <select aria-label="Workspace" value=${current ?? ''} onChange=${(e) => (location.hash = e.target.value ? `#/w/${e.target.value}` : '#/agent')}>
      <option value="">Personal</option>
      ${shared.map((w) => html`<option value=${w.slug}>${w.name}</option>`)}
    </select></label>`;
}

function Shell({ me, config, onSignOut }) {
  const hash = useHash();
  const isAdmin = me.user.role === 'admin';
  const routes = ROUTES.filter((r) => !r.admin || isAdmin);
  const workspaces = useApi('/api/workspaces');
  const rollout = /^\/admin\/rollouts\/([A-Za-z0-9-]+)$/.exec(hash);
  const workspace = /^\/w\/([a-z0-9-]+)(?:\/(members|settings))?$/.exec(hash);
  const invite = /^\/invite\/([A-Za-z0-9_-]+)$/.exec(hash);
  const route = routes.find((r) => r.path === hash);
  useEffect(() => {
    document.title = `${route?.title ?? (rollout ? 'Rollout' : workspace ? 'Workspace' : invite ? 'Invitation' : 'Not found')} · Hangar`;
  }, [hash]);
  let body;
  if (rollout && isAdmin) body = html`<${RolloutPage} id=${rollout[1]} config=${config} />`;
  else if (workspace) body = html`<${WorkspacePage} key=${workspace[1]} me=${me} config=${config} slug=${workspace[1]} tab=${workspace[2] ?? 'agent'} onChanged=${workspaces.reload} />`;
  else if (invite) body = html`<${InvitePage} token=${invite[1]} me=${me} onChanged=${workspaces.reload} />`;
  else if (route) body = html`<${route.page} me=${me} config=${config} onChanged=${workspaces.reload} />`;
  else body = html`<h1>Not found</h1><p>No page at <code>${hash}</code>. <a href="#/agent">Go to your agent</a>.</p>`;
  return html`
    <header class="top">
      <a class="brand" href="#/agent">Hangar</a>
      <nav aria-label="Main">
        ${routes.map((r) => html`<a href=${`#${r.path}`} aria-current=${hash === r.path || (r.path === '/admin/rollouts' && rollout) ? 'page' : undefined}>${r.title}</a>`)}
      </nav>
      <${WorkspaceSwitcher} workspaces=${workspaces.data} current=${workspace?.[1]} />
      <span class="who">${me.user.displayName} (${me.user.role})</span>
      <button class="secondary" onClick=${onSignOut}>Sign out</button>
    </header>
    <main>${body}</main>`;
}

function App() {
  const [state, setState] = useState({ phase: 'loading' });
  async function boot() {
    try {
      const [onboarding, config] = await Promise.all([api('/api/onboarding'), api('/api/auth/config')]);
      if (!onboarding.completed) return setState({ phase: 'onboarding', config });
      const token = resetToken();
      if (token) return setState({ phase: 'reset', config, token });
      if (!config.signedIn) return setState({ phase: 'login', config });
      const me = await api('/api/auth/me');
      setCsrf(me.csrfToken);
      setState({ phase: 'in', me, config });
    } catch (error) {
      setState({ phase: 'error', error });
    }
  }
  useEffect(() => {
    boot();
  }, []);
  async function signOut() {
    await api('/api/auth/logout', { method: 'POST' }).catch(() => undefined);
    setCsrf(null);
    location.hash = '#/agent';
    setState({ phase: 'login', config: state.config });
  }
  switch (state.phase) {
    case 'loading':
      return html`<main><${Loading} what="Loading Hangar" /></main>`;
    case 'error':
      return html`<main><h1>Hangar is not reachable</h1><${ErrorBox} error=${state.error} /><p><button onClick=${boot}>Try again</button></p></main>`;
    case 'onboarding':
      return html`<${OnboardingPage} config=${state.config} onDone=${boot} />`;
    case 'login':
      return html`<${LoginPage} config=${state.config} onSignedIn=${boot} />`;
    case 'reset':
      return html`<${ResetPasswordPage} token=${state.token} onDone=${() => {
        // The link is spent: out of the address bar and the history.
        history.replaceState(null, '', '#/agent');
        boot();
      }} />`;
    default:
      return html`<${Shell} me=${state.me} config=${state.config} onSignOut=${signOut} />`;
  }
}

const root = document.getElementById('root');
root.textContent = '';
render(html`<${App} />`, root);
