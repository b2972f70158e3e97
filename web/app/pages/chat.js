import { useEffect, useRef, useState } from '/ui/vendor/preact-htm.js';
import { ApiError, csrfHeaders, ErrorBox, html, Loading, readSse, useApi } from '../lib.js';
import { renderMarkdown } from '../markdown.js';

// Chat with my agent, or (agentId) a workspace's shared agent: answers stream
// in as the agent sends them; the history is the one the agent keeps in its
// own volume. A workspace agent's history is shared: a viewer reads every
// member's conversation and cannot write.

const textOf = (list) => list.filter((m) => m && (m.role === 'user' || m.role === 'assistant')).map((m) => ({ role: m.role, content: String(m.content ?? '') }));

/** The conversation this page continues: the caller's "default" session (the page sends no session id). */
function historyOf(data, meId) {
  const own = data?.sessions?.find((s) => s.id === 'default' && (!s.userId || s.userId === meId));
  const list = Array.isArray(data) ? data : (data?.messages ?? own?.messages ?? []);
  return textOf(list);
}

const Bubble = ({ m }) => (m.role === 'assistant'
  // Answers are markdown, rendered sanitised (web/app/markdown.js); what the user typed stays text.
  ? html`<div class="msg assistant md" data-role="assistant" dangerouslySetInnerHTML=${{ __html: renderMarkdown(m.content) }}></div>`
  : html`<div class=${`msg ${m.role}`} data-role=${m.role}>${m.content}</div>`);

/** A workspace agent's history as a viewer reads it: every member's conversation, named. */
function SharedHistory({ data, names }) {
  const sessions = data?.sessions ?? [];
  if (data?.agentRunning === false) return html`<p class="empty">The workspace agent is stopped, so its history is not shown.</p>`;
  if (sessions.length === 0) return html`<p class="empty">Nobody has talked to the workspace agent yet.</p>`;
  return html`<div class="chat" data-testid="chat-log">${sessions.map((s) => html`<section aria-label=${`Conversation of ${names?.[s.userId] ?? s.userId}`}>
    <h3>${names?.[s.userId] ?? s.userId ?? 'Someone'} <span class="muted">(${s.id})</span></h3>
    ${textOf(s.messages).map((m) => html`<${Bubble} m=${m} />`)}
  </section>`)}</div>`;
}

/**
 * From 80 % of a monthly token budget on: how much is used and when it resets
 * (GET /api/me/usage; the totals there may lag other API processes by seconds).
 */
function BudgetBanner({ usage }) {
  const worst = (usage?.budgets ?? []).filter((b) => b.state !== 'ok').sort((a, b) => b.percent - a.percent)[0];
  if (!worst) return null;
  const whose = worst.scope === 'user' ? 'Your' : `The workspace${worst.name ? ` ${worst.name}` : ''}'s`;
  const when = new Date(worst.resetsAt).toLocaleString();
  return html`<div class=${`notice ${worst.state === 'exceeded' ? 'danger' : 'warn'}`} role="status" data-testid="budget-banner" data-state=${worst.state}>
    ${worst.state === 'exceeded'
      ? `${whose} monthly token budget is used up (${worst.used} of ${worst.monthlyTokens} tokens). Chat is refused until it resets on ${when}.`
      : `${whose} monthly token budget is ${Math.floor(worst.percent)} % used (${worst.used} of ${worst.monthlyTokens} tokens); it resets on ${when}.`}
  </div>`;
}

export function ChatPage({ me, agentId = null, readOnly = false, names = null, title = 'Chat' }) {
  const history = useApi(agentId ? `/api/chat/sessions?agentId=${encodeURIComponent(agentId)}` : '/api/chat/sessions');
  const usage = useApi(readOnly ? null : '/api/me/usage');
  const [messages, setMessages] = useState(null);
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const end = useRef(null);
  useEffect(() => {
    if (history.data && messages === null) setMessages(historyOf(history.data, me?.user?.id));
  }, [history.data]);
  useEffect(() => end.current?.scrollIntoView({ block: 'end' }), [messages]);

  async function send(e) {
    e.preventDefault();
    const content = text.trim();
    if (!content) return;
    setText('');
    setBusy(true);
    setError(null);
    setMessages((m) => [...(m ?? []), { role: 'user', content }, { role: 'assistant', content: '', streaming: true }]);
    const append = (delta) => setMessages((m) => {
      const copy = m.slice();
      const last = copy[copy.length - 1];
      copy[copy.length - 1] = { ...last, content: last.content + delta };
      return copy;
    });
    try {
      const res = await fetch('/api/chat', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...csrfHeaders() },
        credentials: 'same-origin',
        body: JSON.stringify({ messages: [{ role: 'user', content }], stream: true, ...(agentId ? { agentId } : {}) }),
      });
      if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
      await readSse(res, (_event, data) => {
        if (data === '[DONE]') return;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new ApiError(502, { error: chunk.error });
        const delta = chunk.choices?.[0]?.delta?.content;
        if (delta) append(delta);
      });
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, { error: { code: 'stream', message: String(err?.message ?? err) } }));
      setMessages((m) => m.filter((x) => !(x.streaming && !x.content)));
    } finally {
      setMessages((m) => m.map((x) => ({ role: x.role, content: x.content })));
      setBusy(false);
      usage.reload();
    }
  }

  if (readOnly) {
    return html`<h2>${title}</h2><div class="card">
      ${history.loading && !history.data ? html`<${Loading} what="Loading the history" />` : null}
      <${ErrorBox} error=${history.error} />
      ${history.data ? html`<${SharedHistory} data=${history.data} names=${names} />` : null}
      <p class="muted">Viewers read the workspace agent's history; members and above chat with it.</p>
    </div>`;
  }
  const Heading = agentId ? 'h2' : 'h1';
  return html`<${Heading}>${title}</${Heading}>
    <${BudgetBanner} usage=${usage.data} />
    <div class="card">
      ${history.loading && messages === null ? html`<${Loading} what="Loading your history" />` : null}
      ${history.error && history.error.status !== 404 ? html`<${ErrorBox} error=${history.error} />` : null}
      ${messages !== null || history.error?.status === 404 ? html`<div class="chat" aria-live="polite" data-testid="chat-log">
        ${(messages ?? []).length === 0 ? html`<p class="empty">${history.data?.agentRunning === false
          ? 'Your agent is stopped, so its history is not shown. Say hello: it starts, and the history comes back with it.'
          : 'No messages yet. Say hello: your agent starts if it is stopped.'}</p>` : null}
        ${(messages ?? []).map((m) => html`<${Bubble} m=${m} />`)}
        <div ref=${end}></div>
      </div>` : null}
    </div>
    <form class="card stack" onSubmit=${send}>
      <label>Message <textarea name="message" required value=${text} onInput=${(e) => setText(e.target.value)} onKeyDown=${(e) => {
        if (e.key === 'Enter' && !e.shiftKey) {
          e.preventDefault();
          e.target.form.requestSubmit();
        }
      }}></textarea></label>
      <${ErrorBox} error=${error} />
      <div class="row"><button type="submit" disabled=${busy}>${busy ? 'Answering…' : 'Send'}</button><span class="muted">Enter sends, Shift+Enter breaks the line.</span></div>
    </form>`;
}
