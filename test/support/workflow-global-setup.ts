import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import type { TestProject } from 'vitest/node';
import { ensureTemporalTestServer } from './temporal-test-server.ts';

export interface WorkflowTierInfo {
  /** Executable that starts Temporal's time-skipping test server (the SDK passes the port). */
  testServerPath: string;
  /** The workflow bundle, built once per run from workflows/index.ts (as the worker builds it). */
  workflowBundlePath: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    workflowTier: WorkflowTierInfo;
  }
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

// Once per run: fetch the test server (first time only) and bundle the
// workflows, so each test file only starts its own server and workers.
export default async function setup(project: TestProject) {
  const testServerPath = await ensureTemporalTestServer();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hangar-wftest-'));
  const bundle = await bundleWorkflowCode({ workflowsPath: path.join(root, 'workflows/index.ts'), logger: new DefaultLogger('WARN') });
  const workflowBundlePath = path.join(dir, 'workflow-bundle.js');
  await writeFile(workflowBundlePath, bundle.code);
  project.provide('workflowTier', { testServerPath, workflowBundlePath });
  return () => rm(dir, { recursive: true, force: true });
}
