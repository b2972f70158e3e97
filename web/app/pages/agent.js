import { useEffect, useState } from '/ui/vendor/preact-htm.js';
import { api, ApiError, Badge, csrfHeaders, ErrorBox, html, Loading, readSse, short, TemporalLink, useAction, useApi, when } from '../lib.js';

// My agent, live: the status comes from GET /api/me/agent/events (server-sent
// events), so a start, a reap or a rollout shows up without a reload.

const PHASES = { queued: 'Queued behind other starts', creating: 'Creating the container', starting: 'Starting', waiting_for_health: 'Waiting for it to answer', ready: 'Ready' };

function useLiveAgent() {
  const [agent, setAgent] = useState(undefined);
  const [streamError, setStreamError] = useState(null);
  useEffect(() => {
    const es = new EventSource('/api/me/agent/events');
    es.addEventListener('agent', (e) => {
      setAgent(JSON.parse(e.data));
      setStreamError(null);
    });
    // The server says when it ends a stream for good (account deactivated): no reconnecting then.
    es.addEventListener('end', () => {
      es.close();
      setStreamError(new ApiError(401, { error: { code: 'account_deactivated', message: 'This account was deactivated; live updates ended.' } }));
    });
    es.onerror = () => setStreamError(new ApiError(0, { error: { code: 'live_updates', message: 'Live updates paused; reconnecting…' } }));
    return () => es.close();
  }, []);
  return { agent, setAgent, streamError };
}

export function AgentPage() {
  const { agent, setAgent, streamError } = useLiveAgent();
  const [phase, setPhase] = useState(null);
  const { busy, error, run } = useAction();

  const start = () => run(async () => {
    setPhase('creating');
    const res = await fetch('/api/me/agent/start', { method: 'POST', headers: { accept: 'text/event-stream', ...csrfHeaders() }, credentials: 'same-origin' });
    if (!res.ok) {
      setPhase(null);
      throw new ApiError(res.status, await res.json().catch(() => null));
    }
    let failure = null;
    await readSse(res, (event, data) => {
      const body = JSON.parse(data);
      if (event === 'progress') setPhase(body.phase === 'queued' ? `queued:${body.position}` : body.phase);
      else if (event === 'ready') setAgent(body);
      else if (event === 'error') failure = new ApiError(503, body);
    });
    setPhase(null);
    if (failure) throw failure;
  });
  const act = (what) => run(async () => setAgent(await api(`/api/me/agent/${what}`, { method: 'POST' })));

  if (agent === undefined && !streamError) return html`<h1>My agent</h1><${Loading} what="Loading your agent" />`;
  const status = agent?.status ?? 'none';
  return html`<h1>My agent</h1>
    <${ErrorBox} error=${streamError} />
    <div class="card stack">
      <div class="row"><strong>Status:</strong> <span data-testid="agent-status" aria-live="polite">${agent ? html`<${Badge} status=${status} />` : 'not created yet'}</span>
        ${agent?.statusReason ? html`<span class="muted">(${agent.statusReason})</span>` : null}</div>
      ${phase ? html`<p class="notice" role="status" data-testid="start-progress">${phase.startsWith('queued:') ? `${PHASES.queued} (number ${phase.slice(7)} in line)` : (PHASES[phase] ?? phase)}…</p>` : null}
      ${agent ? html`<p class="muted">Image <code>${agent.image}</code> · digest <code>${short(agent.imageDigest)}</code> · last active ${when(agent.lastActiveAt)}</p>` : html`<p class="muted">Your agent is created the first time you start it or chat.</p>`}
      <div class="row">
        <button disabled=${busy || status === 'running'} onClick=${start}>Start</button>
        <button class="secondary" disabled=${busy || !agent || status === 'stopped'} onClick=${() => act('stop')}>Stop</button>
        <button class="secondary" disabled=${busy || !agent} onClick=${() => act('restart')}>Restart</button>
      </div>
      <${ErrorBox} error=${error} />
      ${agent ? html`<${TemporalLink} workflowId=${agent.workflowId} url=${agent.temporalUrl} />` : null}
    </div>
    ${agent ? html`<${IdleTimeout} agent=${agent} onSaved=${setAgent} />` : null}
    ${agent ? html`<${UpdateBox} available=${agent.updateAvailable} />` : null}`;
}

function IdleTimeout({ agent, onSaved }) {
  const [minutes, setMinutes] = useState(agent.idleTimeoutMin);
  const { busy, error, run } = useAction();
  const [saved, setSaved] = useState(false);
  return html`<form class="card stack" onSubmit=${(e) => {
    e.preventDefault();
    run(async () => {
      onSaved(await api('/api/me/agent', { method: 'PATCH', body: { idleTimeoutMin: Number(minutes) } }));
      setSaved(true);
    });
  }}>
    <h2>Idle timeout</h2>
    <label>Stop my agent after this many idle minutes (1–1440)
      <input name="idleTimeoutMin" type="number" min="1" max="1440" required value=${minutes} onInput=${(e) => (setMinutes(e.target.value), setSaved(false))} /></label>
    <${ErrorBox} error=${error} />
    ${saved ? html`<p class="success" role="status">Saved.</p>` : null}
    <div class="row"><button type="submit" disabled=${busy}>Save</button></div>
  </form>`;
}

function UpdateBox({ available }) {
  const offer = useApi('/api/me/agent/update', [available]);
  const { busy, error, run } = useAction();
  const [started, setStarted] = useState(null);
  if (offer.loading && !offer.data) return null;
  if (offer.error) return html`<div class="card"><${ErrorBox} error=${offer.error} /></div>`;
  if (!offer.data?.available) return null;
  return html`<div class="card stack" data-testid="update-available">
    <h2>Update available</h2>
    <p>A new image of <code>${offer.data.image}</code> is ready (<code>${short(offer.data.toDigest)}</code>).</p>
    <h3>What changed</h3>
    <pre class="mono">${offer.data.changelog ?? 'No changelog in the image.'}</pre>
    <${ErrorBox} error=${error} />
    ${started ? html`<p class="success" role="status">Updating: your data is snapshotted first and restored if anything fails.</p>` : null}
    <div class="row"><button disabled=${busy || started} onClick=${() => run(async () => setStarted(await api('/api/me/agent/update', { method: 'POST' })))}>Update now</button></div>
  </div>`;
}
