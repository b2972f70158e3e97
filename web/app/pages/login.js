import { api, ErrorBox, html, useAction } from '../lib.js';
import { useState } from '/ui/vendor/preact-htm.js';

/** Password sign-in (local and breakglass accounts), and SSO when OIDC is set up. */
export function LoginForm({ onSignedIn, submitLabel = 'Sign in' }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const { busy, error, run } = useAction();
  const submit = (e) => {
    e.preventDefault();
    run(async () => {
      await api('/api/auth/login', { body: { username, password } });
      onSignedIn();
    });
  };
  return html`<form class="stack" onSubmit=${submit} aria-label="Sign in">
    <label>Username or email <input name="username" autocomplete="username" required value=${username} onInput=${(e) => setUsername(e.target.value)} /></label>
    <label>Password <input name="password" type="password" autocomplete="current-password" required value=${password} onInput=${(e) => setPassword(e.target.value)} /></label>
    <${ErrorBox} error=${error} />
    <div class="row"><button type="submit" disabled=${busy}>${busy ? 'Signing in…' : submitLabel}</button></div>
  </form>`;
}

export function LoginPage({ config, onSignedIn }) {
  return html`<main>
    <h1>Sign in to Hangar</h1>
    <div class="card">
      <${LoginForm} onSignedIn=${onSignedIn} />
      ${config?.oidc ? html`<p><a href="/api/auth/oidc/login" role="button">Sign in with SSO</a></p>` : null}
    </div>
  </main>`;
}
