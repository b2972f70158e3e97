import { useState } from '/ui/vendor/preact-htm.js';
import { api, ErrorBox, html, Loading, useAction, useApi } from '../lib.js';

// Admin: sign-in settings after onboarding (OIDC and GitHub). Each is tested
// before it is saved, applies to the next sign-in (no restart), and can be
// removed; a secret left blank keeps the stored one. Password sign-in (and
// the breakglass) keeps working whatever is set here.

function Checks({ result }) {
  if (!result) return null;
  return html`<div class=${result.ok ? 'success' : 'error'} role="status" data-testid="test-result">
    <strong>${result.ok ? 'Test passed' : 'Test failed'}</strong>
    <ul>${result.checks.map((c) => html`<li>${c.ok === true ? '✓' : c.ok === false ? '✗' : '?'} ${c.name}: ${c.detail}</li>`)}</ul>
  </div>`;
}

/** One provider's form: fields, Test, Save and Remove against /api/admin/auth/<kind>. */
function ProviderSettings({ kind, title, current, fields, hint, onSaved }) {
  const empty = Object.fromEntries(fields.map((f) => [f.name, f.secret ? '' : (current?.[f.name] ?? '')]));
  const [f, setF] = useState(empty);
  const [result, setResult] = useState(null);
  const [saved, setSaved] = useState(null);
  const act = useAction();
  const body = () => Object.fromEntries(Object.entries(f).filter(([, v]) => v !== ''));
  const run = (fn) => act.run(async () => {
    setSaved(null);
    await fn();
  });
  return html`<form class="card stack" aria-label=${title} onSubmit=${(e) => {
    e.preventDefault();
    run(async () => {
      await api(`/api/admin/auth/${kind}`, { method: 'PUT', body: body() });
      setF({ ...f, ...Object.fromEntries(fields.filter((x) => x.secret).map((x) => [x.name, ''])) });
      setSaved('Saved: the next sign-in uses it.');
      await onSaved();
    });
  }}>
    <h2>${title}</h2>
    ${hint}
    <p class="muted" data-testid=${`${kind}-state`}>${current ? `Configured${current.clientSecretSet ? ' (secret stored)' : ''}.` : 'Not configured.'}</p>
    ${fields.map((x) => html`<label>${x.label}
      <input name=${`${kind}-${x.name}`} type=${x.secret ? 'password' : 'text'} autocomplete="off" required=${!x.secret || !current?.clientSecretSet}
        placeholder=${x.secret && current?.clientSecretSet ? 'leave blank to keep the stored secret' : (x.placeholder ?? '')}
        value=${f[x.name]} onInput=${(e) => setF({ ...f, [x.name]: e.target.value })} /></label>`)}
    <${Checks} result=${result} />
    ${saved ? html`<p class="success" role="status">${saved}</p>` : null}
    <${ErrorBox} error=${act.error} />
    <div class="row">
      <button type="button" class="secondary" disabled=${act.busy} onClick=${() => run(async () => {
        const b = body();
        // Nothing typed: the stored settings are tested.
        setResult(await api(`/api/admin/auth/${kind}/test`, Object.keys(b).length ? { body: b } : { method: 'POST' }));
      })}>Test</button>
      <button type="submit" disabled=${act.busy}>Save</button>
      <button type="button" class="danger" disabled=${act.busy || !current} onClick=${() => confirm(`Remove ${title}? Nobody can sign in with it until it is set again.`) && run(async () => {
        await api(`/api/admin/auth/${kind}`, { method: 'DELETE' });
        setResult(null);
        setF(Object.fromEntries(fields.map((x) => [x.name, ''])));
        setSaved('Removed.');
        await onSaved();
      })}>Remove</button>
    </div>
  </form>`;
}

export function SignInSettingsPage() {
  const s = useApi('/api/admin/auth/settings');
  if (!s.data) return html`<h1>Sign-in settings</h1>${s.loading ? html`<${Loading} what="Loading sign-in settings" />` : null}<${ErrorBox} error=${s.error} />`;
  const d = s.data;
  return html`<h1>Sign-in settings</h1>
    <p class="muted">Password sign-in, and the breakglass admin, work whatever is set here.</p>
    <${ProviderSettings} key=${`oidc-${d.oidc?.clientId ?? ''}`} kind="oidc" title="Single sign-on (OIDC)" current=${d.oidc} onSaved=${s.reload}
      hint=${html`<p class="muted">Register <code>${d.oidcRedirectUri}</code> as the redirect URI at your provider.</p>`}
      fields=${[
        { name: 'issuerUrl', label: 'Issuer URL', placeholder: 'https://login.example.com/realms/main' },
        { name: 'clientId', label: 'Client ID' },
        { name: 'clientSecret', label: 'Client secret', secret: true },
      ]} />
    <${ProviderSettings} key=${`github-${d.github?.clientId ?? ''}-${d.github?.allowedOrg ?? ''}`} kind="github" title="GitHub sign-in" current=${d.github} onSaved=${s.reload}
      hint=${html`<p class="muted">Create an OAuth app at ${d.githubOauthUrl} with the callback URL <code>${d.githubCallbackUrl}</code>. New accounts are made only for members of the allowed organisation; invited users are linked by their verified email.</p>`}
      fields=${[
        { name: 'clientId', label: 'GitHub client ID' },
        { name: 'clientSecret', label: 'GitHub client secret', secret: true },
        { name: 'allowedOrg', label: 'Allowed organisation' },
      ]} />`;
}
