import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
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
    log,
  });
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
