import { rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection, WithStartWorkflowOperation } from '@temporalio/client';
import { bundleWorkflowCode } from '@temporalio/worker';
import pLimit from 'p-limit';
import { ConfigSchema } from '../../core/config.ts';
import { withProcessDefaults } from '../../core/runtime/process-defaults.runtime.ts';
import { buildDist, launch, stopChild } from '../support/production.runtime.ts';
import { bareColdStart, quantile, row, rssMb, staticConfigServer, type BenchContext, type BenchRow } from './bench.harness.ts';
import { ensureUp } from './floor/empty-start.workflow.ts';

// The floor: what the chosen stack costs with no Hangar code in it, measured
// in the same run as the goals it bounds. Two goals of the fast path are
// ratios against budgets that the stack may not fit under whatever Hangar
// does; this module measures that instead of arguing it.
//  - A start's orchestration: update-with-start of an empty lifecycle (a
//    local step, one activity on a second queue, a local step, the answer;
//    every step a no-op), against the headroom the cold-start goal leaves
//    (0.10 × a bare create+start+health of Hangar's container, measured here).
//  - Memory: an API process (fastify, a Temporal client, the Prisma client
//    after a query) and a worker process (two Temporal workers, 1,000 trivial
//    workflows alive, Hangar's default cache), against the 300 MB budget.
const here = path.dirname(fileURLToPath(import.meta.url));
const STARTS = Number(process.env.BENCH_FLOOR_STARTS ?? 15);
const WORKFLOWS = Number(process.env.BENCH_FLOOR_WORKFLOWS ?? 1000);

export default async function floorBench({ stack, docker, log }: BenchContext): Promise<BenchRow[]> {
  buildDist(); // the API child loads the compiled Prisma client
  const run = `floor-${process.pid}-${Date.now()}`;
  const queue = `${run}-control`;
  const hostQueue = `${run}-host`;
  const bundlePath = path.join(os.tmpdir(), `${run}-bundle.js`);
  const { code } = await bundleWorkflowCode({ workflowsPath: path.join(here, 'floor/empty-start.workflow.ts'), logger: { info() {}, warn() {}, error: log, debug() {}, trace() {}, log() {} } });
  await writeFile(bundlePath, code);
  const cache = Number((ConfigSchema.properties.workerMaxCachedWorkflows as { default?: number }).default); // Hangar's default
  const env = withProcessDefaults({ ...process.env });
  const child = path.join(here, 'floor/stack-floor.child.mjs');
  const ready = (o: string) => o.includes('ready');
  const worker = await launch([child, 'worker', `temporal=${stack.temporalAddress}`, `queue=${queue}`, `hostQueue=${hostQueue}`, `bundle=${bundlePath}`, `cache=${cache}`], env, ready, 'floor worker');
  const connection = await Connection.connect({ address: stack.temporalAddress });
  const client = new Client({ connection });
  const ids: string[] = [];
  const config = await staticConfigServer();
  const network = await docker.createNetwork({ Name: `hangar-bench-floor-${process.pid}`, Driver: 'bridge', Options: { 'com.docker.network.bridge.enable_icc': 'false' } });
  try {
    // Orchestration: the client here, the worker in its own process (as the API and the worker are).
    const startOnce = async (i: number): Promise<number> => {
      const workflowId = `${run}/start-${i}`;
      ids.push(workflowId);
      const op = new WithStartWorkflowOperation('emptyLifecycle', { workflowId, taskQueue: queue, args: [hostQueue], workflowIdConflictPolicy: 'USE_EXISTING' });
      const t0 = performance.now();
      const state = await client.workflow.executeUpdateWithStart(ensureUp, { startWorkflowOperation: op });
      if (state !== 'running') throw new Error(`empty start answered ${state}`);
      return performance.now() - t0;
    };
    for (let i = 0; i < 3; i++) await startOnce(-1 - i); // warm both processes' paths
    const starts: number[] = [];
    const bare: number[] = [];
    await bareColdStart(docker, stack.agentImage, config.port, -1, network.id);
    for (let i = 0; i < STARTS; i++) {
      // Interleaved, so a burst of load hits both alike, and spaced as the
      // start bench's starts are (in one run, empty starts sent back to back
      // took ≈ 3× longer; that was not reproduced since).
      starts.push(await startOnce(i));
      bare.push(await bareColdStart(docker, stack.agentImage, config.port, i, network.id));
    }
    const list = (xs: number[]) => xs.map((t) => t.toFixed(0)).join(' ');
    log(`empty Temporal starts ${list(starts)} ms; bare create+start+health ${list(bare)} ms`);

    // Memory: the worker with WORKFLOWS lifecycles alive (each has run its first task; the cache holds `cache`).
    const idleWorkerMb = await rssMb(worker.pid!);
    const t0 = performance.now();
    const alive = Array.from({ length: WORKFLOWS }, (_, i) => `${run}/alive-${i}`);
    ids.push(...alive);
    await pLimit(50).map(alive, (workflowId) => client.workflow.start('emptyLifecycle', { workflowId, taskQueue: queue, args: [hostQueue] }));
    // Started is not yet run: a query answers only once the worker holds the workflow (replaying it if evicted).
    await pLimit(50).map(alive, (workflowId) => client.workflow.getHandle(workflowId).query('__stack_trace'));
    log(`${WORKFLOWS} empty lifecycles alive in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const workerMb = await rssMb(worker.pid!);
    const api = await launch([child, 'api', `temporal=${stack.temporalAddress}`], { ...env, DATABASE_URL: stack.databaseUrl }, ready, 'floor api');
    const apiMb = await rssMb(api.pid!);
    await stopChild(api);
    log(`RSS: API stack ${apiMb.toFixed(0)} MB; worker stack ${idleWorkerMb.toFixed(0)} MB idle, ${workerMb.toFixed(0)} MB with ${WORKFLOWS} alive`);

    const bareP50 = quantile(bare, 0.5);
    const bareP95 = quantile(bare, 0.95);
    const how = `${STARTS} empty starts (update-with-start, a local step, an activity on a second queue, a local step; all no-ops) against 0.10 × of as many bare create+start+health of Hangar's container that a ≤ 1.10× cold start leaves for everything Hangar adds`;
    return [
      row('floor: empty Temporal start p50 / headroom of the 1.10× cold-start goal', quantile(starts, 0.5), 0.1 * bareP50, 'ms', null, how),
      row('floor: empty Temporal start p95 / headroom of the 1.10× cold-start goal', quantile(starts, 0.95), 0.1 * bareP95, 'ms', null, how),
      row(
        'floor: API + worker RSS of the stack with no Hangar code / 300 MB budget',
        apiMb + workerMb,
        300,
        'MB',
        null,
        `fastify + Temporal client + Prisma client (API) ${apiMb.toFixed(0)} MB; two Temporal workers, ${WORKFLOWS} trivial workflows alive, cache ${cache} (worker) ${workerMb.toFixed(0)} MB (${idleWorkerMb.toFixed(0)} MB with none); node ${process.version}, MALLOC_ARENA_MAX=2`,
      ),
    ];
  } finally {
    await pLimit(100).map(ids, (workflowId) => client.workflow.getHandle(workflowId).terminate('floor bench done').catch(() => undefined));
    await stopChild(worker);
    await connection.close();
    await network.remove().catch(() => undefined);
    await config.close();
    await rm(bundlePath, { force: true });
  }
}
