import { useEffect, useState } from '/ui/vendor/preact-htm.js';
import { api, Badge, Empty, ErrorBox, html, Loading, useAction, useApi, when } from '../lib.js';

// Settings: providers (with a Test button), the agent's config, API tokens, your password.

const TYPES = ['openai', 'anthropic', 'ollama', 'zai', 'custom'];

export function ProviderForm({ onSubmit, busy, submitLabel = 'Add provider' }) {
  const [f, setF] = useState({ name: '', displayName: '', type: 'openai', baseUrl: '', apiKey: '', models: '' });
  const set = (k) => (e) => setF({ ...f, [k]: e.target.value });
  const submit = (e) => {
    e.preventDefault();
    const models = f.models.split(/[\s,]+/).filter(Boolean).map((id) => ({ id }));
    onSubmit({
      name: f.name,
      displayName: f.displayName || f.name,
      type: f.type,
      ...(f.baseUrl ? { baseUrl: f.baseUrl } : {}),
      ...(f.apiKey ? { apiKey: f.apiKey } : {}),
      ...(models.length ? { models } : {}),
    });
  };
  return html`<form class="stack" onSubmit=${submit} aria-label="Provider details">
    <label>Name (lowercase, used in model names like <code>name/model</code>) <input name="providerName" required pattern="[a-z0-9][a-z0-9_\\-]{0,62}" value=${f.name} onInput=${set('name')} /></label>
    <label>Display name <input name="displayName" value=${f.displayName} onInput=${set('displayName')} /></label>
    <label>Type <select name="type" value=${f.type} onChange=${set('type')}>${TYPES.map((t) => html`<option value=${t}>${t}</option>`)}</select></label>
    <label>Base URL <input name="baseUrl" type="url" placeholder="https://api.example.com/v1" value=${f.baseUrl} onInput=${set('baseUrl')} /></label>
    <label>API key <input name="apiKey" type="password" autocomplete="off" value=${f.apiKey} onInput=${set('apiKey')} /></label>
    <label>Models (ids, comma separated) <input name="models" value=${f.models} onInput=${set('models')} /></label>
    <div class="row"><button type="submit" disabled=${busy}>${submitLabel}</button></div>
  </form>`;
}

function Providers({ onChange }) {
  const list = useApi('/api/me/providers');
  const add = useAction();
  const [results, setResults] = useState({});
  const test = async (id) => {
    setResults((r) => ({ ...r, [id]: { pending: true } }));
    try {
      const out = await api(`/api/me/providers/${id}/test`, { method: 'POST' });
      setResults((r) => ({ ...r, [id]: out }));
    } catch (e) {
      setResults((r) => ({ ...r, [id]: { ok: false, error: e.message } }));
    }
  };
  const remove = async (id) => {
    await add.run(async () => {
      await api(`/api/me/providers/${id}`, { method: 'DELETE' });
      await list.reload();
      onChange();
    });
  };
  useEffect(() => {
    if (list.data) onChange(list.data);
  }, [list.data]);
  return html`<section class="card">
    <h2>LLM providers</h2>
    ${list.loading && !list.data ? html`<${Loading} what="Loading providers" />` : null}
    <${ErrorBox} error=${list.error} />
    ${list.data?.length === 0 ? html`<${Empty}>No providers yet: add one below.</${Empty}>` : null}
    ${list.data?.length ? html`<div class="table-wrap"><table><thead><tr><th>Name</th><th>Type</th><th>Key</th><th>Models</th><th>Actions</th></tr></thead><tbody>
      ${list.data.map((p) => html`<tr data-provider=${p.name}>
        <td>${p.displayName} <code>${p.name}</code></td><td>${p.type}</td>
        <td>${p.hasApiKey ? `…${p.apiKeyLast4}` : 'none'}</td>
        <td>${p.models.map((m) => m.id).join(', ') || '—'}</td>
        <td><div class="row">
          <button class="secondary" onClick=${() => test(p.id)} aria-label=${`Test ${p.name}`}>Test</button>
          <button class="danger" onClick=${() => remove(p.id)} aria-label=${`Delete ${p.name}`}>Delete</button>
        </div>
        ${results[p.id] ? html`<p role="status" data-testid="provider-test" class=${results[p.id].ok ? 'success' : results[p.id].pending ? 'muted' : 'error'}>${results[p.id].pending ? 'Testing…' : results[p.id].ok ? `Works (${results[p.id].latencyMs} ms)` : `Failed: ${results[p.id].error}`}</p>` : null}</td>
      </tr>`)}</tbody></table></div>` : null}
    <h3>Add a provider</h3>
    <${ProviderForm} busy=${add.busy} onSubmit=${(body) => add.run(async () => {
      await api('/api/me/providers', { body });
      await list.reload();
    })} />
    <${ErrorBox} error=${add.error} />
  </section>`;
}

function AgentConfig({ providers }) {
  const cfg = useApi('/api/me/agent-config');
  const [f, setF] = useState(null);
  const save = useAction();
  const [result, setResult] = useState(null);
  useEffect(() => {
    if (cfg.data) setF({ providerId: cfg.data.providerId ?? '', primaryModel: cfg.data.primaryModel ?? '', fallbackModels: cfg.data.fallbackModels.join(', '), personality: cfg.data.personality ?? '' });
  }, [cfg.data]);
  if (cfg.loading && !f) return html`<section class="card"><${Loading} what="Loading the agent config" /></section>`;
  if (cfg.error) return html`<section class="card"><${ErrorBox} error=${cfg.error} /></section>`;
  if (!f) return null;
  const set = (k) => (e) => (setF({ ...f, [k]: e.target.value }), setResult(null));
  const submit = (e) => {
    e.preventDefault();
    save.run(async () => {
      const out = await api('/api/me/agent-config', {
        method: 'PUT',
        body: {
          providerId: f.providerId || null,
          primaryModel: f.primaryModel || null,
          fallbackModels: f.fallbackModels.split(/[\s,]+/).filter(Boolean),
          personality: f.personality || null,
        },
      });
      setResult(out.restart);
    });
  };
  return html`<form class="card stack" onSubmit=${submit}>
    <h2>Agent config</h2>
    <label>Provider <select name="providerId" aria-label="Agent provider" value=${f.providerId} onChange=${set('providerId')}>
      <option value="">(none)</option>
      ${(providers ?? []).map((p) => html`<option value=${p.id}>${p.displayName} (${p.name})</option>`)}
    </select></label>
    <label>Primary model (<code>provider/model</code>) <input name="primaryModel" value=${f.primaryModel} onInput=${set('primaryModel')} /></label>
    <label>Fallback models (comma separated) <input name="fallbackModels" value=${f.fallbackModels} onInput=${set('fallbackModels')} /></label>
    <label>Personality <textarea name="personality" value=${f.personality} onInput=${set('personality')}></textarea></label>
    <${ErrorBox} error=${save.error} />
    ${result ? html`<p class="success" role="status" data-testid="config-result">${result === 'scheduled' ? 'Saved. Your running agent restarts to pick it up.' : 'Saved. It applies when your agent next starts.'}</p>` : null}
    <div class="row"><button type="submit" disabled=${save.busy}>Save config</button></div>
  </form>`;
}

function Tokens() {
  const list = useApi('/api/tokens');
  const act = useAction();
  const [name, setName] = useState('');
  const [created, setCreated] = useState(null);
  const [copied, setCopied] = useState(false);
  const tokens = Array.isArray(list.data) ? list.data : (list.data?.data ?? []);
  return html`<section class="card stack">
    <h2>API tokens</h2>
    ${list.loading && !list.data ? html`<${Loading} what="Loading tokens" />` : null}
    <${ErrorBox} error=${list.error} />
    ${list.data && tokens.length === 0 ? html`<${Empty}>No tokens.</${Empty}>` : null}
    ${tokens.length ? html`<div class="table-wrap"><table><thead><tr><th>Name</th><th>Prefix</th><th>Scopes</th><th>Last used</th><th></th></tr></thead><tbody>
      ${tokens.map((t) => html`<tr><td>${t.name}</td><td><code>${t.prefix}</code></td><td>${t.scopes.join(', ')}</td><td>${when(t.lastUsedAt)}</td>
        <td><button class="danger" aria-label=${`Revoke ${t.name}`} onClick=${() => act.run(async () => {
          await api(`/api/tokens/${t.id}`, { method: 'DELETE' });
          await list.reload();
        })}>Revoke</button></td></tr>`)}
    </tbody></table></div>` : null}
    <form class="row" onSubmit=${(e) => {
      e.preventDefault();
      act.run(async () => {
        setCreated(await api('/api/tokens', { body: { name } }));
        setCopied(false);
        setName('');
        await list.reload();
      });
    }}>
      <label>New token name <input name="tokenName" required value=${name} onInput=${(e) => setName(e.target.value)} /></label>
      <button type="submit" disabled=${act.busy}>Create token</button>
    </form>
    ${created ? html`<div class="notice" role="status">
      <p>Copy it now: it is shown only once.</p>
      <p class="token mono" data-testid="new-token">${created.token}</p>
      <button class="secondary" onClick=${async () => {
        await navigator.clipboard?.writeText(created.token).catch(() => undefined);
        setCopied(true);
      }}>${copied ? 'Copied' : 'Copy'}</button>
    </div>` : null}
    <${ErrorBox} error=${act.error} />
  </section>`;
}

/** Your own password (accounts that have one): the current one first; your other sessions end. */
function ChangePassword() {
  const act = useAction();
  const [f, setF] = useState({ currentPassword: '', newPassword: '', repeat: '' });
  const [done, setDone] = useState(false);
  const set = (k) => (e) => setF({ ...f, [k]: e.target.value });
  return html`<form class="card stack" aria-label="Change password" onSubmit=${(e) => {
    e.preventDefault();
    setDone(false);
    if (f.newPassword !== f.repeat) return act.setError({ code: 'mismatch', message: 'The new passwords differ' });
    act.run(async () => {
      await api('/api/me/password', { body: { currentPassword: f.currentPassword, newPassword: f.newPassword } });
      setF({ currentPassword: '', newPassword: '', repeat: '' });
      setDone(true);
    });
  }}>
    <h2>Password</h2>
    <label>Current password <input name="currentPassword" type="password" autocomplete="current-password" required value=${f.currentPassword} onInput=${set('currentPassword')} /></label>
    <label>New password (at least 12 characters) <input name="newPassword" type="password" autocomplete="new-password" required minlength="12" value=${f.newPassword} onInput=${set('newPassword')} /></label>
    <label>New password again <input name="repeatPassword" type="password" autocomplete="new-password" required minlength="12" value=${f.repeat} onInput=${set('repeat')} /></label>
    ${done ? html`<p class="success" role="status">Password changed. Your other sessions have ended.</p>` : null}
    <${ErrorBox} error=${act.error} />
    <div class="row"><button type="submit" disabled=${act.busy}>Change password</button></div>
  </form>`;
}

export function SettingsPage({ me }) {
  const [providers, setProviders] = useState(null);
  const hasPassword = me?.user.authSource === 'local' || me?.user.authSource === 'breakglass';
  return html`<h1>Settings</h1>
    <${Providers} onChange=${(p) => p && setProviders(p)} />
    <${AgentConfig} providers=${providers} />
    <${Tokens} />
    ${hasPassword ? html`<${ChangePassword} />` : null}`;
}
