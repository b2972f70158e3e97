import { describe, expect, it } from 'vitest';
import { agentWorkflowId, SEARCH_ATTRIBUTES } from '../../core/contracts/agent.contract.ts';
import { stateQuery } from '../../core/contracts/agent.contract.ts';
import { createTestUser, eventually, startHangar, useScene } from '../support/hangar.harness.ts';
import { chat, giveProvider } from '../support/scenario.ts';

// Controlling one agent: start progress as SSE, stop/restart, config changes
// that restart once, back-pressure on starts, and what operators see in Temporal.
describe('agent control', () => {
  const scene = useScene({});

  it('streams start progress, then stops and restarts on request', async () => {
    const user = await createTestUser(scene.h);
    await giveProvider(user, scene.fake);
    const res = await user.api('/api/me/agent/start', { method: 'POST', headers: { accept: 'text/event-stream' } });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const text = await res.text();
    const events = [...text.matchAll(/event: (\w+)\ndata: (.*)\n/g)].map(([, e, d]) => ({ event: e, data: JSON.parse(d) }));
    const phases = events.filter((e) => e.event === 'progress').map((e) => e.data.phase);
    expect(phases.length).toBeGreaterThan(0);
    expect(phases.every((p) => ['creating', 'starting', 'waiting_for_health', 'ready'].includes(p))).toBe(true);
    const ready = events.at(-1)!;
    expect(ready.event).toBe('ready');
    expect(ready.data.status).toBe('running');
    scene.agentIds.push(ready.data.id);

    const stopped = await user.api('/api/me/agent/stop', { method: 'POST' });
    expect((await stopped.json()).status).toBe('stopped');
    expect((await scene.h.docker.getContainer(`hangar-agent-${ready.data.id}`).inspect()).State.Running).toBe(false);

    const restarted = await user.api('/api/me/agent/restart', { method: 'POST' });
    expect((await restarted.json()).status).toBe('running');
    expect((await chat(user, 'alive')).text).toBe('echo: alive');
  });

  it('restarts a running agent once for a burst of config changes, keeping its data', async () => {
    const user = await createTestUser(scene.h);
    const provider = await giveProvider(user, scene.fake);
    await user.api('/api/me/agent/start', { method: 'POST' });
    const agent = (await scene.h.core.agents.findOwned('user', user.id))!;
    scene.agentIds.push(agent.id);
    expect((await chat(user, 'before the change')).text).toBe('echo: before the change');
    const handle = scene.h.temporal.workflow.getHandle(agentWorkflowId(agent.id));
    const before = await handle.query(stateQuery);
    const startedAt = (await scene.h.docker.getContainer(agent.containerName).inspect()).State.StartedAt;

    const bodies = ['Be brief.', 'Be very brief.', 'Be kind.'];
    for (const personality of bodies) {
      const put = await user.api('/api/me/agent-config', {
        method: 'PUT',
        body: { primaryModel: 'scene.fake/scene.fake-model', fallbackModels: [], personality, providerId: provider.id },
      });
      expect((await put.json()).restart).toBe('scheduled');
    }
    const after = await eventually(async () => {
      const s = await handle.query(stateQuery);
      return s.generation > before.generation && s.status === 'running' && !s.restartPending ? s : null;
    }, 'the debounced restart');
    // All three signals were in the history before we looked (each PUT
    // returned after its signal), and the restart came after the last one:
    // one stop, one start. No second restart is pending (restartPending is
    // false); the debounce's timing itself is proven in the workflow tier.
    expect(after.generation).toBe(before.generation + 1);
    const events = (await handle.fetchHistory()).events ?? [];
    const signals = events.map((e, i) => (e.workflowExecutionSignaledEventAttributes?.signalName === 'configChanged' ? i : -1)).filter((i) => i >= 0);
    expect(signals).toHaveLength(bodies.length);
    const stops = events.map((e, i) => (e.activityTaskScheduledEventAttributes?.activityType?.name === 'stopContainer' ? i : -1)).filter((i) => i > signals[0]);
    expect(stops).toHaveLength(1);
    expect(stops[0]).toBeGreaterThan(signals.at(-1)!);
    expect((await scene.h.docker.getContainer(agent.containerName).inspect()).State.StartedAt).not.toBe(startedAt);

    // The new personality reached the agent, and the old history survived the restart.
    expect((await chat(user, 'after the change')).text).toBe('echo: after the change');
    const upstream = scene.fake.seen.filter((s) => s.body?.messages?.some((m) => m.content === 'after the change')).at(-1);
    expect(upstream?.body?.messages?.[0]).toEqual({ role: 'system', content: 'Be kind.' });
    expect(JSON.stringify(await (await user.api('/api/chat/sessions')).json())).toContain('before the change');
  });

  it('operators find agent workflows by search attributes, with a summary', async () => {
    const user = await createTestUser(scene.h);
    await giveProvider(user, scene.fake);
    const { id } = await (await user.api('/api/me/agent/start', { method: 'POST' })).json();
    scene.agentIds.push(id);
    const desc = await scene.h.temporal.workflow.getHandle(agentWorkflowId(id)).describe();
    expect(desc.searchAttributes[SEARCH_ATTRIBUTES.agentId]).toEqual([id]);
    expect(desc.searchAttributes[SEARCH_ATTRIBUTES.ownerId]).toEqual([user.id]);
    expect(await desc.staticSummary()).toContain(user.id);
    const found = await eventually(async () => {
      for await (const wf of scene.h.temporal.workflow.list({ query: `${SEARCH_ATTRIBUTES.ownerId}="${user.id}"` })) return wf;
      return null;
    }, 'the visibility index', 20_000);
    expect(found.workflowId).toBe(agentWorkflowId(id));

    // Scraping needs an admin's token (README, "Metrics").
    const metrics = await (await (await createTestUser(scene.h, 'admin')).api('/metrics')).text();
    expect(metrics).toMatch(/hangar_agents\{status="running"\} [1-9]/);
    expect(metrics).toMatch(/hangar_workflow_operations_total\{operation="ensureRunning",outcome="ok"\} [1-9]/);
    expect(metrics).toContain('hangar_http_request_duration_seconds_bucket');
  });

  it('queues starts past the cap in arrival order, shows the position, and answers 429 only when the queue is full', async () => {
    const tight = await startHangar({ HANGAR_MAX_CONCURRENT_STARTS: '1', HANGAR_START_QUEUE_MAX: '2' }, { worker: false });
    const load = () => tight.core.agentControl.startLoad();
    let openGate = () => {};
    try {
      const users = await Promise.all([0, 1, 2, 3].map(() => createTestUser(tight)));
      for (const u of users) await giveProvider(u, scene.fake);
      // The first start holds the only slot until the queue has been seen
      // full: on a quiet machine a real start can end before the third
      // request arrives, and the queue would never fill. The gate sits in
      // front of the Temporal port; the starts then run for real.
      const port = tight.core.temporal.agents;
      const realEnsureRunning = port.ensureRunning.bind(port);
      const gate = new Promise<void>((resolve) => (openGate = resolve));
      port.ensureRunning = async (agent) => {
        await gate;
        return realEnsureRunning(agent);
      };
      // One at a time into the queue, so arrival order is known.
      const first = users[0].api('/api/me/agent/start', { method: 'POST' });
      await eventually(async () => load().running === 1, 'the first start running', 20_000);
      const second = users[1].api('/api/me/agent/start', { method: 'POST', headers: { accept: 'text/event-stream' } });
      await eventually(async () => load().queued === 1, 'the second start queued', 20_000);
      const third = users[2].api('/api/me/agent/start', { method: 'POST' });
      await eventually(async () => load().queued === 2, 'the third start queued', 20_000);
      // The engine is still protected: past the queue's bound a start is refused at once.
      const refused = await users[3].api('/api/me/agent/start', { method: 'POST' });
      expect(refused.status).toBe(429);
      expect(refused.headers.get('retry-after')).toBe('5');
      expect((await refused.json()).error.code).toBe('start_queue_full');
      openGate();

      const [a, b, c] = await Promise.all([first, second, third]);
      expect(a.status).toBe(200);
      expect(c.status).toBe(200);
      const events = await b.text();
      expect(events).toContain('"phase":"queued","position":1');
      expect(events.indexOf('"phase":"queued"')).toBeLessThan(events.indexOf('event: ready'));
      for (const u of users.slice(0, 3)) {
        const agent = await tight.core.agents.findOwned('user', u.id);
        scene.agentIds.push(agent!.id);
        expect(agent!.status).toBe('running');
      }
      expect(load()).toEqual({ running: 0, queued: 0 });
    } finally {
      openGate();
      await tight.stop();
    }
  });
});
