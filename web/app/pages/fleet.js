import { useEffect, useState } from '/ui/vendor/preact-htm.js';
import { api, Badge, Empty, ErrorBox, html, Loading, Pager, short, TemporalLink, useAction, useApi, useInterval, when } from '../lib.js';

// Fleet updates for admins: settings, rollouts (live: polled every 1.5 s while
// one runs, since its progress is written to its row at every step), events.

const FINISHED = ['completed', 'aborted', 'failed'];

export function FleetSettingsPage() {
  const current = useApi('/api/admin/fleet/settings');
  const [f, setF] = useState(null);
  const save = useAction();
  const [saved, setSaved] = useState(false);
  useEffect(() => {
    if (current.data) {
      const s = current.data;
      setF({ ...s, allowlist: s.imageAllowlist.join('\n'), channelsText: s.channels.map((c) => `${c.image} ${c.pollIntervalSeconds}`).join('\n'), hour: s.defaultPreferredHourUtc ?? '' });
    }
  }, [current.data]);
  if (current.loading && !f) return html`<h1>Fleet settings</h1><${Loading} what="Loading settings" />`;
  if (current.error) return html`<h1>Fleet settings</h1><${ErrorBox} error=${current.error} />`;
  if (!f) return null;
  const setS = (k, num = true) => (e) => (setF({ ...f, strategy: { ...f.strategy, [k]: num ? Number(e.target.value) : e.target.value } }), setSaved(false));
  const submit = (e) => {
    e.preventDefault();
    save.run(async () => {
      const body = {
        mode: f.mode,
        strategy: f.strategy,
        defaultPreferredHourUtc: f.hour === '' ? null : Number(f.hour),
        imageAllowlist: f.allowlist.split(/\s+/).filter(Boolean),
        channels: f.channelsText.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
          const [image, secs] = l.split(/\s+/);
          return { image, pollIntervalSeconds: Number(secs ?? 300) };
        }),
      };
      await api('/api/admin/fleet/settings', { method: 'PUT', body });
      await current.reload();
      setSaved(true);
    });
  };
  return html`<h1>Fleet settings</h1>
    <form class="card stack" onSubmit=${submit}>
      <label>Mode <select name="mode" value=${f.mode} onChange=${(e) => setF({ ...f, mode: e.target.value })}>
        <option value="auto">auto: new digests roll out by themselves</option>
        <option value="manual">manual: owners are offered updates</option>
        <option value="paused">paused: running rollouts hold at the next wave</option>
      </select></label>
      <fieldset class="stack"><legend>Strategy</legend>
        <label>Kind <select name="kind" value=${f.strategy.kind} onChange=${setS('kind', false)}>
          <option value="rollingWave">rolling waves</option><option value="immediate">immediate (all at once)</option><option value="singleAgent">single agent</option>
        </select></label>
        <label>Wave size (% of agents) <input name="batchPercent" type="number" min="1" max="100" value=${f.strategy.batchPercent} onInput=${setS('batchPercent')} /></label>
        <label>Pause between waves (seconds) <input name="pauseSeconds" type="number" min="0" max="86400" value=${f.strategy.pauseSeconds} onInput=${setS('pauseSeconds')} /></label>
        <label>Abort after this many failed agents <input name="failureThreshold" type="number" min="1" value=${f.strategy.failureThreshold} onInput=${setS('failureThreshold')} /></label>
        <label>Retries per agent <input name="maxRetries" type="number" min="0" max="5" value=${f.strategy.maxRetries} onInput=${setS('maxRetries')} /></label>
        <label>Health timeout (seconds) <input name="healthTimeoutSeconds" type="number" min="5" max="3600" value=${f.strategy.healthTimeoutSeconds} onInput=${setS('healthTimeoutSeconds')} /></label>
      </fieldset>
      <label>Default preferred hour (UTC, empty = at once) <input name="defaultPreferredHourUtc" type="number" min="0" max="23" value=${f.hour} onInput=${(e) => setF({ ...f, hour: e.target.value })} /></label>
      <label>Image allowlist (prefixes, one per line) <textarea name="imageAllowlist" value=${f.allowlist} onInput=${(e) => setF({ ...f, allowlist: e.target.value })}></textarea></label>
      <label>Channels the poller watches (<code>image seconds</code>, one per line) <textarea name="channels" value=${f.channelsText} onInput=${(e) => setF({ ...f, channelsText: e.target.value })}></textarea></label>
      <${ErrorBox} error=${save.error} />
      ${saved ? html`<p class="success" role="status">Saved.</p>` : null}
      <div class="row"><button type="submit" disabled=${save.busy}>Save settings</button></div>
    </form>
    <${EgressCard} />`;
}

/** The agent egress allowlist: what agents may reach beyond the public internet (README "Agent egress"). */
function EgressCard() {
  const current = useApi('/api/admin/egress');
  const [text, setText] = useState(null);
  const save = useAction();
  const [hosts, setHosts] = useState(null);
  useEffect(() => {
    if (current.data) setText(current.data.allow.join('\n'));
  }, [current.data]);
  const submit = (e) => {
    e.preventDefault();
    save.run(async () => {
      const out = await api('/api/admin/egress', { method: 'PUT', body: { allow: text.split(/[\s,]+/).filter(Boolean) } });
      setHosts(out.hosts);
      await current.reload();
    });
  };
  return html`<form class="card stack" onSubmit=${submit}>
    <h2>Agent egress</h2>
    ${current.loading && text === null ? html`<${Loading} what="Loading the egress allowlist" />` : null}
    <${ErrorBox} error=${current.error} />
    ${current.data ? html`<p>Agents reach the public internet and Hangar's API only.${current.data.policy === 'off' ? html` <strong>The policy is off (HANGAR_EGRESS_POLICY=off).</strong>` : null}
      ${current.data.source === 'default' ? ' This list is the HANGAR_EGRESS_ALLOW default until you save one.' : null}</p>` : null}
    ${text !== null ? html`<label>Egress allowlist (one entry per line)
      <textarea name="egressAllow" value=${text} onInput=${(e) => (setText(e.target.value), setHosts(null))}></textarea></label>
      <p>Entries: <code>host:11434</code> opens a port on the Docker host (a local model server); <code>10.0.5.0/24</code> or <code>10.0.5.7:8000</code> opens a LAN network or one port of it. Other agents stay unreachable.</p>` : null}
    <${ErrorBox} error=${save.error} />
    ${hosts ? html`<ul role="status" data-testid="egress-hosts">${hosts.map((h) => html`<li>${h.hostId}: <${Badge} status=${h.status} />${h.reason ? ` ${h.reason}` : ''}</li>`)}</ul>` : null}
    <div class="row"><button type="submit" disabled=${save.busy || text === null}>Save egress allowlist</button></div>
  </form>`;
}

export function RolloutsPage() {
  const [page, setPage] = useState(1);
  const list = useApi(`/api/admin/rollouts?page=${page}&limit=20`);
  const running = list.data?.data.some((r) => !FINISHED.includes(r.status));
  useInterval(() => list.reload(), 3000, Boolean(running));
  const start = useAction();
  const [f, setF] = useState({ image: '', toDigest: '', kind: '', ignoreWindows: false });
  return html`<h1>Rollouts</h1>
    <form class="card stack" onSubmit=${(e) => {
      e.preventDefault();
      start.run(async () => {
        const r = await api('/api/admin/rollouts', { body: { image: f.image, ...(f.toDigest.trim() ? { toDigest: f.toDigest.trim() } : {}), ...(f.kind ? { strategy: { kind: f.kind } } : {}), ...(f.ignoreWindows ? { ignoreWindows: true } : {}) } });
        location.hash = `#/admin/rollouts/${r.id}`;
      });
    }}>
      <h2>Start a rollout</h2>
      <label>Image <input name="image" required placeholder="hangar/agent:latest" value=${f.image} onInput=${(e) => setF({ ...f, image: e.target.value })} /></label>
      <label>Digest (optional: an earlier build to go back to; empty = the tag's current one) <input name="toDigest" placeholder="sha256:…" pattern="sha256:[a-f0-9]{64}" value=${f.toDigest} onInput=${(e) => setF({ ...f, toDigest: e.target.value })} /></label>
      <label>Strategy <select name="strategyKind" value=${f.kind} onChange=${(e) => setF({ ...f, kind: e.target.value })}>
        <option value="">the fleet setting</option><option value="rollingWave">rolling waves</option><option value="immediate">immediate</option>
      </select></label>
      <label class="inline"><input type="checkbox" name="ignoreWindows" checked=${f.ignoreWindows} onChange=${(e) => setF({ ...f, ignoreWindows: e.target.checked })} /> Ignore preferred hours</label>
      <${ErrorBox} error=${start.error} />
      <div class="row"><button type="submit" disabled=${start.busy}>${start.busy ? 'Starting…' : 'Start rollout'}</button></div>
    </form>
    <section class="card">
      ${list.loading && !list.data ? html`<${Loading} what="Loading rollouts" />` : null}
      <${ErrorBox} error=${list.error} />
      ${list.data?.data.length === 0 ? html`<${Empty}>No rollouts yet.</${Empty}>` : null}
      ${list.data?.data.length ? html`<div class="table-wrap"><table><thead><tr><th>Started</th><th>Image</th><th>To</th><th>Status</th><th>Updated</th><th></th></tr></thead><tbody>
        ${list.data.data.map((r) => html`<tr><td>${when(r.createdAt)}</td><td><code>${r.image}</code></td><td><code>${short(r.toDigest)}</code></td>
          <td><${Badge} status=${r.status} /></td><td>${r.counts.updated ?? 0} / ${r.counts.total ?? 0}</td>
          <td><a href=${`#/admin/rollouts/${r.id}`}>Details</a> · <a href=${r.temporalUrl} target="_blank" rel="noopener" aria-label=${`Workflow of rollout ${r.id} in Temporal UI`}>Temporal ↗</a></td></tr>`)}
      </tbody></table></div>` : null}
      <${Pager} meta=${list.data?.meta} page=${page} setPage=${setPage} />
    </section>`;
}

export function RolloutPage({ id }) {
  const r = useApi(`/api/admin/rollouts/${id}`);
  const live = r.data && !FINISHED.includes(r.data.status);
  useInterval(() => r.reload(), 1500, Boolean(live));
  const act = useAction();
  if (r.loading && !r.data) return html`<h1>Rollout</h1><${Loading} what="Loading the rollout" />`;
  if (r.error && !r.data) return html`<h1>Rollout</h1><${ErrorBox} error=${r.error} />`;
  const d = r.data;
  const byId = new Map(d.agents.map((a) => [a.agentId, a]));
  const done = (d.counts.updated ?? 0) + (d.counts.rolled_back ?? 0) + (d.counts.failed ?? 0) + (d.counts.skipped ?? 0) + (d.counts.update_available ?? 0);
  const signal = (what) => act.run(async () => (await api(`/api/admin/rollouts/${id}/${what}`, { method: 'POST' }), await r.reload()));
  return html`<h1>Rollout of <code>${d.image}</code></h1>
    <div class="card stack">
      <div class="row"><strong>Status:</strong> <span data-testid="rollout-status"><${Badge} status=${d.status} /></span>${d.reason ? html`<span class="muted">${d.reason}</span>` : null}</div>
      <div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax=${d.counts.total ?? 0} aria-valuenow=${done}><span style=${`width:${d.counts.total ? (100 * done) / d.counts.total : 100}%`}></span></div>
      <p class="muted">To <code>${short(d.toDigest)}</code>${d.fromDigest ? html` from <code>${short(d.fromDigest)}</code>` : null} · ${d.strategy.kind} · started ${when(d.createdAt)}${d.finishedAt ? ` · finished ${when(d.finishedAt)}` : ''}</p>
      <p class="muted">${Object.entries(d.counts).filter(([k, v]) => k !== 'total' && v > 0).map(([k, v]) => `${v} ${k.replace(/_/g, ' ')}`).join(' · ') || 'no agents'}</p>
      ${d.changelog ? html`<details><summary>Changelog</summary><pre class="mono">${d.changelog}</pre></details>` : null}
      <div class="row">
        <button class="secondary" disabled=${!live || act.busy || d.status === 'paused'} onClick=${() => signal('pause')}>Pause</button>
        <button class="secondary" disabled=${!live || act.busy || d.status !== 'paused'} onClick=${() => signal('resume')}>Resume</button>
        <button class="danger" disabled=${!live || act.busy} onClick=${() => confirm('Abort this rollout? Agents not yet updated stay as they are.') && signal('abort')}>Abort</button>
      </div>
      <${ErrorBox} error=${act.error ?? r.error} />
      <${TemporalLink} workflowId=${d.workflowId} url=${d.temporalUrl} />
    </div>
    <section class="card"><h2>Waves</h2>
      ${d.waves.length === 0 ? html`<${Empty}>No waves: ${d.agents.length ? 'every agent was offered the update or skipped.' : 'no agent runs this image.'}</${Empty}>` : null}
      <div class="waves">${d.waves.map((w) => html`<div class="wave" data-testid="wave">
        <div class="row"><strong>Wave ${w.index + 1}</strong> <${Badge} status=${w.status} /> <span class="muted">${w.agentIds.length} agent(s)${w.notBefore ? ` · not before ${when(w.notBefore)}` : ''}</span></div>
        <ul>${w.agentIds.map((a) => html`<li><code>${a.slice(0, 8)}</code> <${Badge} status=${byId.get(a)?.status ?? 'pending'} /> ${byId.get(a)?.error ? html`<span class="muted">${byId.get(a).error}</span>` : null}</li>`)}</ul>
      </div>`)}</div>
      ${d.agents.filter((a) => !d.waves.some((w) => w.agentIds.includes(a.agentId))).length ? html`<h3>Not in a wave</h3><ul>${d.agents.filter((a) => !d.waves.some((w) => w.agentIds.includes(a.agentId))).map((a) => html`<li><code>${a.agentId.slice(0, 8)}</code> <${Badge} status=${a.status} /> ${a.error ?? ''}</li>`)}</ul>` : null}
    </section>
    <p><a href=${`#/admin/events`}>Fleet events</a> · <a href="#/admin/rollouts">All rollouts</a></p>`;
}

export function FleetEventsPage() {
  const [page, setPage] = useState(1);
  const [type, setType] = useState('');
  const q = `/api/admin/fleet/events?page=${page}&limit=50${type ? `&type=${encodeURIComponent(type)}` : ''}`;
  const list = useApi(q);
  return html`<h1>Fleet events</h1>
    <section class="card">
      <label>Type <select name="type" value=${type} onChange=${(e) => (setType(e.target.value), setPage(1))}>
        <option value="">all</option>
        ${['rollout.started', 'rollout.wave_started', 'rollout.wave_completed', 'rollout.paused', 'rollout.resumed', 'rollout.completed', 'rollout.aborted', 'agent.updated', 'agent.rolled_back', 'agent.update_failed', 'agent.update_available'].map((t) => html`<option value=${t}>${t}</option>`)}
      </select></label>
      ${list.loading && !list.data ? html`<${Loading} what="Loading events" />` : null}
      <${ErrorBox} error=${list.error} />
      ${list.data?.data.length === 0 ? html`<${Empty}>No fleet events${type ? ` of type ${type}` : ''}.</${Empty}>` : null}
      ${list.data?.data.length ? html`<div class="table-wrap"><table><thead><tr><th>When</th><th>Type</th><th>Agent</th><th>Rollout</th><th>Details</th></tr></thead><tbody>
        ${list.data.data.map((e) => html`<tr><td>${when(e.at)}</td><td>${e.type}</td><td><code>${e.agentId?.slice(0, 8) ?? '—'}</code></td>
          <td>${e.rolloutId ? html`<a href=${`#/admin/rollouts/${e.rolloutId}`}>${e.rolloutId.slice(0, 8)}</a>` : '—'}</td>
          <td class="mono">${Object.entries(e.payload).filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join('; ')}</td></tr>`)}
      </tbody></table></div>` : null}
      <${Pager} meta=${list.data?.meta} page=${page} setPage=${setPage} />
    </section>`;
}
