import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, bundleWorkflowCode, DefaultLogger, Runtime, makeTelemetryFilterString } from '@temporalio/worker';
Runtime.install({ logger: new DefaultLogger('ERROR'), telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }) } } });
const bundle = { code: (await import('node:fs')).readFileSync('/tmp/wftest-bundle.js', 'utf8') };
for (const exe of process.argv.slice(2)) {
  let t = Date.now(); const t0 = t;
  const out: string[] = [];
  const lap = (m: string) => { const n = Date.now(); out.push(`${m} ${n - t}`); t = n; };
  const env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: exe } } });
  lap('server');
  const w = await Worker.create({ connection: env.nativeConnection, taskQueue: 'q', workflowBundle: bundle, activities: { getInstanceId: async () => 'i', listDockerHosts: async () => [] } });
  lap('worker');
  await w.runUntil(async () => {
    for (let i = 0; i < 5; i++) { await env.client.workflow.execute('fleetReconcile', { taskQueue: 'q', workflowId: 'x' + i }); lap('wf' + i); }
  });
  await env.teardown();
  console.log(exe.split('/').pop(), out.join(' '), 'total', Date.now() - t0);
}
