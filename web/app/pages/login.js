import { api, ErrorBox, html, useAction } from '../lib.js';
import { useState } from '/ui/vendor/preact-htm.js';

/** Password sign-in (local and breakglass accounts), and SSO (OIDC, GitHub) when set up. */
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
      ${config?.github ? html`<p><a href="/api/auth/github/login" role="button">Sign in with GitHub</a></p>` : null}
    </div>
  </main>`;
}

/** The page an admin's reset link opens (#/reset-password/<token>): a new password, once. */
export function ResetPasswordPage({ token, onDone }) {
  const [password, setPassword] = useState('');
  const [repeat, setRepeat] = useState('');
  const [done, setDone] = useState(false);
  const { busy, error, run, setError } = useAction();
  return html`<main>
    <h1>Choose a new password</h1>
    <form class="card stack" aria-label="Choose a new password" onSubmit=${(e) => {
      e.preventDefault();
      if (password !== repeat) return setError({ code: 'mismatch', message: 'The passwords differ' });
      run(async () => {
        await api('/api/auth/password-reset', { body: { token, newPassword: password } });
        setDone(true);
      });
    }}>
      <label>New password (at least 12 characters) <input name="newPassword" type="password" autocomplete="new-password" required minlength="12" value=${password} onInput=${(e) => setPassword(e.target.value)} /></label>
      <label>New password again <input name="repeatPassword" type="password" autocomplete="new-password" required minlength="12" value=${repeat} onInput=${(e) => setRepeat(e.target.value)} /></label>
      <${ErrorBox} error=${error} />
      ${done ? html`<p class="success" role="status">Password set. Every other session of yours has ended.</p>` : null}
      <div class="row">${done ? html`<button type="button" onClick=${onDone}>Go to sign-in</button>` : html`<button type="submit" disabled=${busy}>Set password</button>`}</div>
    </form>
  </main>`;
}
