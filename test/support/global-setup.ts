import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { ONBOARDING_COMPLETED_KEY } from '../../core/contracts/onboarding.contract.ts';
import { startStack } from '../../core/runtime/stack.runtime.ts';
import { buildWorkflowBundle } from '../../worker/workers.ts';
import { freePort } from './ports.ts';

export interface StackInfo {
  dataDir: string;
  databaseUrl: string;
  adminDatabaseUrl: string | null;
  temporalAddress: string;
  secretKey: string;
  workflowBundlePath: string;
  agentImage: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    stack: StackInfo;
  }
}

export async function markOnboarded(databaseUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(
      `INSERT INTO system_config (key, value, encrypted, "updatedAt") VALUES ($1, $2, false, now()) ON CONFLICT (key) DO NOTHING`,
      [ONBOARDING_COMPLETED_KEY, JSON.stringify({ breakglass: 'done', oidc: 'skipped', provider: 'skipped', systemAgents: 'skipped' })],
    );
  } finally {
    await client.end();
  }
}

/** The real stack, throwaway: Postgres, Temporal, the agent image, the workflow bundle. */
export async function startTestStack(log: (m: string) => void = (m) => console.log(`[stack] ${m}`)) {
  const started = Date.now();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'hangar-test-'));
  // mkdtemp makes it 0700; Postgres runs as its own user when we are root.
  await chmod(dataDir, 0o755);
  const agentImage = process.env.HANGAR_AGENT_IMAGE ?? 'hangar/agent:latest';
  const stack = await startStack({
    dataDir,
    databaseUrl: process.env.TEST_DATABASE_URL,
    temporalAddress: process.env.TEST_TEMPORAL_ADDRESS,
    pgPort: await freePort(),
    temporalPort: await freePort(),
    temporalUiPort: await freePort(),
    persistent: false,
    agentImage,
    // The reference agent for the bulk of the tests, rebuilt from docker/agent
    // each run (a cache hit when unchanged) so a stale local image never runs.
    // The OpenClaw image is built by the tests that need it (openclaw.test.ts).
    agentRuntime: 'reference',
    refreshAgentImage: true,
    log,
  });
  // The shared database stands for an instance past its first boot; the
  // onboarding tests make fresh databases of their own.
  await markOnboarded(stack.databaseUrl);
  const bundle = await buildWorkflowBundle();
  const workflowBundlePath = path.join(dataDir, 'workflow-bundle.js');
  await writeFile(workflowBundlePath, bundle.code);
  log(`ready in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  const info: StackInfo = {
    dataDir,
    databaseUrl: stack.databaseUrl,
    adminDatabaseUrl: stack.adminDatabaseUrl,
    temporalAddress: stack.temporalAddress,
    secretKey: randomBytes(32).toString('base64url'),
    workflowBundlePath,
    agentImage,
  };
  return {
    info,
    async stop() {
      await stack.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

// Start the real stack once per run; tests isolate themselves by unique ids.
export default async function setup(project: TestProject) {
  const { info, stop } = await startTestStack();
  project.provide('stack', info);
  return stop;
}
