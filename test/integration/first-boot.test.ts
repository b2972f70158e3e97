import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ONBOARDING_WORKFLOW_ID } from '../../core/contracts/onboarding.contract.ts';
import { repoRoot } from '../../core/runtime/stack.runtime.ts';
import { startTemporalDevServer, type RunningTemporal } from '../../core/runtime/temporal-dev.runtime.ts';
import { freshDatabase, startHangar, type Hangar } from '../support/hangar.harness.ts';
import { freePort } from '../support/ports.ts';

// Claiming a new instance, as an attacker would try it: without the setup
// code, racing twenty requests, and after the console made the admin. Each
// case is a first boot of its own (a fresh database and its own Temporal
// namespace, since the onboarding workflow is one per instance).
describe('first boot: only the console can claim the instance', () => {
  let temporal: RunningTemporal;
  const scenes: { h: Hangar; drop(): Promise<void> }[] = [];
  const password = 'correct horse battery staple';

  beforeAll(async () => {
    temporal = await startTemporalDevServer({
      port: await freePort(),
      headless: true,
      namespaces: ['claim-wrong', 'claim-race', 'claim-cli'],
      logFile: path.join(inject('stack').dataDir, 'temporal-first-boot.log'),
    });
  });
  afterAll(async () => {
    for (const s of scenes) {
      await s.h.stop();
      await s.drop();
    }
    await temporal?.stop();
  });

  async function firstBoot(namespace: string): Promise<Hangar> {
    const db = await freshDatabase({ onboarded: false });
    const h = await startHangar({ DATABASE_URL: db.url, TEMPORAL_ADDRESS: temporal.address, TEMPORAL_NAMESPACE: namespace });
    scenes.push({ h, drop: db.drop });
    return h;
  }

  const claim = (h: Hangar, body: Record<string, unknown>) =>
    fetch(`${h.url}/api/onboarding/breakglass`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  async function history(namespace: string): Promise<string> {
    const connection = await Connection.connect({ address: temporal.address });
    try {
      const client = new Client({ connection, namespace });
      const raw = JSON.stringify(await client.workflow.getHandle(ONBOARDING_WORKFLOW_ID).fetchHistory());
      // Payloads are base64 on the wire: read them as the text they carry.
      return raw.replace(/"data":"([A-Za-z0-9+/=]*)"/g, (_, b64: string) => JSON.stringify(Buffer.from(b64, 'base64').toString('utf8')));
    } finally {
      await connection.close();
    }
  }

  it('refuses a missing or wrong setup code with 401 and creates nothing', async () => {
    const h = await firstBoot('claim-wrong');
    const code = (await h.core.onboarding.setupCode())!;
    const wrong = code.replace(/^./, (c) => (c === 'A' ? 'B' : 'A'));
    for (const body of [{ username: 'root', password }, { username: 'root', password, setupCode: wrong }, { username: 'root', password, setupCode: '' }]) {
      const res = await claim(h, body);
      expect(res.status).toBe(401);
      expect((await res.json()).error.code).toBe('invalid_setup_code');
      expect(res.headers.get('set-cookie')).toBeNull();
    }
    expect(await h.core.db.user.count()).toBe(0);
    expect(await h.core.db.pendingCredential.count()).toBe(0);
    // Still claimable with the right code afterwards (typed in lower case, without dashes).
    const ok = await claim(h, { username: 'root', password, setupCode: code.toLowerCase().replace(/-/g, '') });
    expect(ok.status).toBe(201);
  });

  it('twenty concurrent claims with the right code make exactly one admin and one session', async () => {
    const h = await firstBoot('claim-race');
    const setupCode = (await h.core.onboarding.setupCode())!;
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => claim(h, { username: `racer-${i}`, password, setupCode }).then(async (r) => ({
        status: r.status,
        cookie: r.headers.get('set-cookie'),
        body: await r.json(),
      }))),
    );
    const created = answers.filter((a) => a.status === 201);
    expect(created).toHaveLength(1);
    expect(answers.filter((a) => a.cookie)).toHaveLength(1);
    for (const a of answers.filter((x) => x.status !== 201)) {
      expect(a.status).toBe(409);
      expect(a.body.error.code).toBe('breakglass_exists');
    }
    expect(await h.core.db.user.count()).toBe(1);
    expect((await h.core.db.user.findFirst())?.username).toBe(created[0].body.user.username);
    // The code is used up, and the workflow's history holds no password and no hash of one.
    expect(await h.core.setupCodes.matches(setupCode)).toBe(false);
    const events = await history('claim-race');
    expect(events).toContain('credentialRef');
    expect(events).not.toMatch(/\$2[aby]\$\d\d\$/);
    expect(events).not.toContain(password);
  });

  it('after the console made the admin, a wizard claim with the same username gets 409 and no session', async () => {
    const h = await firstBoot('claim-cli');
    const setupCode = (await h.core.onboarding.setupCode())!;
    // The workflow is running before the console acts, so it has to learn of the CLI's admin.
    expect((await (await fetch(`${h.url}/api/onboarding`)).json()).steps.breakglass).toBe('pending');
    const cli = spawnSync(process.execPath, ['bin/hangar.mjs', 'admin', 'create-breakglass', '--username', 'root', '--password-stdin'], {
      cwd: repoRoot,
      input: 'the console password\n',
      encoding: 'utf8',
      env: h.env,
    });
    expect(cli.status, cli.stderr).toBe(0);

    const res = await claim(h, { username: 'root', password, setupCode });
    expect(res.status).toBe(409);
    expect((await res.json()).error.code).toBe('breakglass_exists');
    expect(res.headers.get('set-cookie')).toBeNull();
    const login = await fetch(`${h.url}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'root', password }),
    });
    expect(login.status).toBe(401);
    expect(await h.core.db.user.count()).toBe(1);
    const state = await (await fetch(`${h.url}/api/onboarding`)).json();
    expect(state.steps.breakglass).toBe('done');
  });
});
