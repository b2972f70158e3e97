import { existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTemporalDevServer, type RunningTemporal } from '../../core/runtime/temporal-dev.runtime.ts';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import { eventually, freshDatabase, removeAgentsFromDocker, spawnApi, startHangar, type Hangar } from '../support/hangar.harness.ts';
import { freePort } from '../support/ports.ts';

// A first boot from an empty database, through the API alone, with the API
// replaced by a new instance between steps. Its own Temporal server and
// database: the workflow id `onboarding` is one per instance.
describe('onboarding', () => {
  let temporal: RunningTemporal;
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let h: Hangar;
  let fake: Awaited<ReturnType<typeof startFakeOpenAI>>;
  let discovery: http.Server;
  let issuer: string;

  beforeAll(async () => {
    [temporal, db, fake] = await Promise.all([
      startTemporalDevServer({ port: await freePort(), headless: true, logFile: path.join(inject('stack').dataDir, 'temporal-onboarding.log') }),
      freshDatabase({ onboarded: false }),
      startFakeOpenAI(),
    ]);
    // A discovery document, enough for the settings check (full OIDC comes with its own tests).
    discovery = http.createServer((req, res) => {
      if (req.url !== '/.well-known/openid-configuration') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({ issuer, authorization_endpoint: `${issuer}/auth`, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks` }),
      );
    });
    await new Promise<void>((r) => discovery.listen(0, '127.0.0.1', r));
    issuer = `http://127.0.0.1:${(discovery.address() as AddressInfo).port}`;
    h = await startHangar({ DATABASE_URL: db.url, TEMPORAL_ADDRESS: temporal.address, HANGAR_EGRESS_ALLOW: `host:${fake.port}` });
  });
  afterAll(async () => {
    await api?.kill();
    await h?.stop();
    await temporal?.stop();
    await db?.drop();
    await fake?.close();
    discovery?.close();
  });

  let cookie = '';
  let csrf = '';
  // The wizard runs against an API in its own process, killed mid-way.
  let api: Awaited<ReturnType<typeof spawnApi>>;
  let apiPort: number;
  const call = async (method: string, url: string, body?: unknown) => {
    const res = await fetch(`${api.url}${url}`, {
      method,
      headers: {
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(cookie ? { cookie } : {}),
        ...(csrf ? { 'x-hangar-csrf': csrf } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json().catch(() => null), headers: res.headers };
  };

  it('runs the wizard end to end, surviving an API process killed between steps', async () => {
    apiPort = await freePort();
    api = await spawnApi(h.env, apiPort);
    const initial = await call('GET', '/api/onboarding');
    expect(initial.body).toEqual({ completed: false, steps: { breakglass: 'pending', oidc: 'pending', provider: 'pending', systemAgents: 'pending' } });
    expect((await call('GET', '/api/me/providers')).body.error.code).toBe('onboarding_required');
    expect((await call('POST', '/api/onboarding/complete')).body.error.code).toBe('breakglass_required');
    expect((await call('POST', '/api/onboarding/oidc', { skip: true })).status).toBe(401);

    const setupCode = (await h.core.onboarding.setupCode())!;
    expect((await call('POST', '/api/onboarding/breakglass', { username: 'root', password: 'short', setupCode })).status).toBe(400);
    const made = await call('POST', '/api/onboarding/breakglass', { username: 'root', password: 'a long breakglass password', setupCode });
    expect(made.status).toBe(201);
    expect(made.body.user).toMatchObject({ username: 'root', role: 'admin', authSource: 'breakglass' });
    cookie = made.headers.get('set-cookie')!.split(';')[0];
    const again = await call('POST', '/api/onboarding/breakglass', { username: 'other', password: 'a long breakglass password', setupCode });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('breakglass_exists');

    // SIGKILL the API and start a new one: the wizard's state lives in the workflow and the database.
    await api.kill();
    api = await spawnApi(h.env, apiPort);
    csrf = (await call('GET', '/api/auth/me')).body.csrfToken;
    expect((await call('GET', '/api/onboarding')).body.steps.breakglass).toBe('done');

    const badOidc = await call('POST', '/api/onboarding/oidc', { issuerUrl: 'http://127.0.0.1:9', clientId: 'x', clientSecret: 'y' });
    expect(badOidc.status).toBe(400);
    expect(badOidc.body.error.code).toBe('oidc_discovery_failed');
    const oidc = await call('POST', '/api/onboarding/oidc', { issuerUrl: issuer, clientId: 'hangar', clientSecret: 'oidc-secret-value' });
    expect(oidc.status).toBe(200);
    expect(oidc.body.steps.oidc).toBe('done');
    const stored = await h.core.db.systemConfig.findUnique({ where: { key: 'oidc.clientSecret' } });
    expect(stored?.encrypted).toBe(true);
    expect(stored?.value).not.toContain('oidc-secret-value');
    expect(h.core.keyring.decrypt(stored!.value)).toBe('oidc-secret-value');

    const provider = { name: 'fake', displayName: 'Fake', type: 'custom', baseUrl: fake.agentBaseUrl, apiKey: 'sk-admin-1111', models: [{ id: 'fake-model' }] };
    const p1 = await call('POST', '/api/onboarding/provider', provider);
    expect(p1.status).toBe(201);
    const p2 = await call('POST', '/api/onboarding/provider', provider);
    expect(p2.body.providerId).toBe(p1.body.providerId);
    const dead = await call('POST', '/api/onboarding/provider', { ...provider, name: 'dead', baseUrl: 'http://127.0.0.1:9/v1' });
    expect(dead.body.error.code).toBe('provider_test_failed');

    const agents = await call('POST', '/api/onboarding/system-agents', {
      agents: [{ name: 'helper', role: 'You help admins.', providerId: p1.body.providerId, primaryModel: 'fake/fake-model' }],
    });
    expect(agents.status).toBe(200);
    expect(agents.body.agentIds).toHaveLength(1);
    const systemAgent = await h.core.agents.get(agents.body.agentIds[0]);
    const runtime = await h.core.agentConfigs.runtimeConfig(systemAgent);
    expect((await h.core.agentConfigs.workspace(systemAgent)).files['SOUL.md']).toContain('You help admins.');
    expect(runtime.agents.defaults.model?.primary).toBe('fake/fake-model');
    expect(Object.keys(runtime.models.providers)).toEqual(['fake']);

    const done = await call('POST', '/api/onboarding/complete');
    expect(done.body).toEqual({ completed: true });
    expect((await call('GET', '/api/onboarding')).body).toEqual({
      completed: true,
      steps: { breakglass: 'done', oidc: 'done', provider: 'done', systemAgents: 'done' },
    });
    expect((await call('GET', '/api/me/providers')).status).toBe(200);
    expect((await call('POST', '/api/onboarding/breakglass', { username: 'late', password: 'a long breakglass password', setupCode })).body.error.code).toBe(
      'onboarding_completed',
    );
    expect(await h.core.db.user.count()).toBe(1);
    // Nothing left to claim: no code, no file.
    expect(await h.core.onboarding.setupCode()).toBeNull();
    expect(existsSync(h.core.setupCodes.file)).toBe(false);

    // The system agent is always on: started at completion, never idle.
    await eventually(async () => (await h.core.agents.get(systemAgent.id)).status === 'running', 'the system agent to start');
    expect(await h.core.agents.isIdle(systemAgent.id, new Date(Date.now() + 365 * 86_400_000))).toBe(false);
    await removeAgentsFromDocker(h.docker, [systemAgent.id]);
  });
});
