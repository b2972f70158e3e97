import { useEffect, useState } from '/ui/vendor/preact-htm.js';
import { api, Badge, ErrorBox, html, Loading, setCsrf, useAction } from '../lib.js';
import { LoginForm } from './login.js';
import { ProviderForm } from './settings.js';

// The first-boot wizard. Each step is an update on the `onboarding` workflow,
// so the wizard resumes wherever it was left: it only ever shows what the
// server says is pending.

const STEPS = [
  ['breakglass', 'Breakglass admin'],
  ['oidc', 'Single sign-on (OIDC)'],
  ['provider', 'First LLM provider'],
  ['systemAgents', 'System agents'],
];

export function OnboardingPage({ config, onDone }) {
  const [state, setState] = useState(null);
  const [signedIn, setSignedIn] = useState(false);
  const [loadError, setLoadError] = useState(null);
  async function refresh() {
    try {
      const s = await api('/api/onboarding');
      setState(s);
      if (s.steps.breakglass === 'done') {
        const { signedIn: yes } = await api('/api/auth/config');
        const me = yes ? await api('/api/auth/me') : null;
        if (me) setCsrf(me.csrfToken);
        setSignedIn(Boolean(me));
      }
      setLoadError(null);
    } catch (e) {
      setLoadError(e);
    }
  }
  useEffect(() => {
    refresh();
  }, []);
  if (loadError) return html`<main><h1>Set up Hangar</h1><${ErrorBox} error=${loadError} /><button onClick=${refresh}>Try again</button></main>`;
  if (!state) return html`<main><${Loading} what="Loading the setup" /></main>`;
  const next = STEPS.find(([k]) => state.steps[k] === 'pending')?.[0] ?? 'complete';
  let step;
  if (next === 'breakglass') step = html`<${Breakglass} onDone=${refresh} />`;
  else if (!signedIn) step = html`<h2>Sign in as the breakglass admin to continue</h2><${LoginForm} onSignedIn=${refresh} />`;
  else if (next === 'oidc') step = html`<${Oidc} onDone=${refresh} />`;
  else if (next === 'provider') step = html`<${Provider} onDone=${refresh} />`;
  else if (next === 'systemAgents') step = html`<${SystemAgents} onDone=${refresh} />`;
  else step = html`<${Complete} onDone=${onDone} />`;
  return html`<main>
    <h1>Set up Hangar</h1>
    <div class="card">
      <ol class="steps" aria-label="Setup steps">
        ${STEPS.map(([k, label]) => html`<li>${label}: <${Badge} status=${state.steps[k]} /></li>`)}
      </ol>
      <p class="muted">Every step is kept as it is done: you can leave and come back. <a href=${`${config.temporalUiUrl}/namespaces/${config.temporalNamespace}/workflows/onboarding`} target="_blank" rel="noopener">The onboarding workflow in Temporal UI ↗</a></p>
    </div>
    <section class="card" aria-live="polite">${step}</section>
  </main>`;
}

/** Each step posts to its endpoint and then reloads the wizard's state. */
function useStep(onDone) {
  const action = useAction();
  const send = (path, body) => action.run(async () => {
    await api(path, body === undefined ? { method: 'POST' } : { body });
    await onDone();
  });
  return { ...action, send };
}

function Breakglass({ onDone }) {
  const [username, setUsername] = useState('admin');
  const [password, setPassword] = useState('');
  const [setupCode, setSetupCode] = useState('');
  const { busy, error, send } = useStep(onDone);
  const submit = (e) => {
    e.preventDefault();
    send('/api/onboarding/breakglass', { username, password, setupCode });
  };
  return html`<form class="stack" onSubmit=${submit}>
    <h2>Create the breakglass admin</h2>
    <p class="muted">A local admin that still works when single sign-on is down. Keep its password somewhere safe.</p>
    <label>Setup code <input name="setupCode" required autocomplete="off" spellcheck="false" value=${setupCode} onInput=${(e) => setSetupCode(e.target.value)} /></label>
    <p class="muted">Printed by <code>npm start</code> when Hangar first starts; run <code>npx hangar setup-code</code> on the server to see it again. Only someone at the server's console can claim a new instance.</p>
    <label>Username <input name="username" required pattern="[a-zA-Z0-9][a-zA-Z0-9._\\-]{2,62}" value=${username} onInput=${(e) => setUsername(e.target.value)} /></label>
    <label>Password (at least 12 characters) <input name="password" type="password" autocomplete="new-password" minlength="12" required value=${password} onInput=${(e) => setPassword(e.target.value)} /></label>
    <${ErrorBox} error=${error} />
    <div class="row"><button type="submit" disabled=${busy}>${busy ? 'Creating…' : 'Create admin'}</button></div>
  </form>`;
}

function Oidc({ onDone }) {
  const [f, setF] = useState({ issuerUrl: '', clientId: '', clientSecret: '' });
  const step = useStep(onDone);
  const { busy, error } = step;
  const set = (k) => (e) => setF({ ...f, [k]: e.target.value });
  const send = (body) => step.send('/api/onboarding/oidc', body);
  return html`<form class="stack" onSubmit=${(e) => (e.preventDefault(), send(f))}>
    <h2>Single sign-on (optional)</h2>
    <p class="muted">Hangar checks the issuer's discovery document before it saves anything.</p>
    <label>Issuer URL <input name="issuerUrl" type="url" required value=${f.issuerUrl} onInput=${set('issuerUrl')} /></label>
    <label>Client id <input name="clientId" required value=${f.clientId} onInput=${set('clientId')} /></label>
    <label>Client secret <input name="clientSecret" type="password" required value=${f.clientSecret} onInput=${set('clientSecret')} /></label>
    <${ErrorBox} error=${error} />
    <div class="row">
      <button type="submit" disabled=${busy}>Save SSO</button>
      <button type="button" class="secondary" disabled=${busy} onClick=${() => send({ skip: true })}>Skip for now</button>
    </div>
  </form>`;
}

function Provider({ onDone }) {
  const { busy, error, send } = useStep(onDone);
  return html`<div class="stack">
    <h2>First LLM provider</h2>
    <p class="muted">Hangar tests it before saving: a provider that cannot answer is not kept.</p>
    <${ProviderForm} submitLabel="Save and test" onSubmit=${(body) => send('/api/onboarding/provider', body)} busy=${busy} />
    <${ErrorBox} error=${error} />
    <div class="row"><button type="button" class="secondary" disabled=${busy} onClick=${() => send('/api/onboarding/provider', { skip: true })}>Skip</button></div>
  </div>`;
}

function SystemAgents({ onDone }) {
  const { busy, error, send } = useStep(onDone);
  return html`<div class="stack">
    <h2>System agents (optional)</h2>
    <p class="muted">Always-on agents that belong to the fleet. You can add them later through the API.</p>
    <${ErrorBox} error=${error} />
    <div class="row"><button type="button" disabled=${busy} onClick=${() => send('/api/onboarding/system-agents', { skip: true })}>Skip</button></div>
  </div>`;
}

function Complete({ onDone }) {
  const { busy, error, send } = useStep(onDone);
  return html`<div class="stack">
    <h2>Ready</h2>
    <p>Everything is set. Finish the setup to open Hangar to your users.</p>
    <${ErrorBox} error=${error} />
    <div class="row"><button disabled=${busy} onClick=${() => send('/api/onboarding/complete')}>Finish setup</button></div>
  </div>`;
}
