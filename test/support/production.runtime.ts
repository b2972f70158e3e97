import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { withProcessDefaults } from '../../core/runtime/process-defaults.runtime.ts';
import { repoRoot } from '../../core/runtime/stack.runtime.ts';
import { freePort } from './ports.ts';

// The API and the worker as production runs them, each its own process, for
// benchmarks that measure them from outside (memory). `HANGAR_BENCH_RUNTIME=tsx`
// runs the TypeScript sources through tsx instead (how development runs).

export interface ProductionProcesses {
  apiUrl: string;
  apiPid: number;
  workerPid: number;
  stop(): Promise<void>;
}

export function launch(args: string[], env: NodeJS.ProcessEnv, ready: (out: string) => boolean, what: string, timeoutMs = 120_000): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} not ready in ${timeoutMs} ms:\n${out.slice(-3000)}`)), timeoutMs);
    const onData = (d: Buffer) => {
      out += d.toString();
      if (out.length > 100_000) out = out.slice(-50_000);
      if (ready(out)) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}:\n${out.slice(-3000)}`));
    });
  });
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(t);
}

/** `npm run build` from this checkout's sources, so what is measured is what is here. */
export function buildDist(): void {
  const build = spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'inherit'] });
  if (build.status !== 0) throw new Error(`npm run build failed (${build.status})`);
}

/** nodeArgs: extra node flags for both processes (the bench's memory experiments). */
export async function startProductionProcesses(given: NodeJS.ProcessEnv, nodeArgs: string[] = []): Promise<ProductionProcesses> {
  // As production starts them: npm start and the image set these too.
  const env = withProcessDefaults(given);
  const tsx = process.env.HANGAR_BENCH_RUNTIME === 'tsx';
  if (!tsx) buildDist();
  const entry = (ts: string) => [...nodeArgs, ...(tsx ? ['--import', 'tsx', ts] : [`dist/${ts.replace(/\.ts$/, '.js')}`])];
  const port = await freePort();
  const worker = await launch(entry('worker/main.ts'), env, (o) => o.includes('[worker] ready'), 'worker');
  const apiEnv = { ...env, PORT: String(port), HOST: '0.0.0.0' };
  const apiUrl = `http://127.0.0.1:${port}`;
  const api = spawn(process.execPath, entry('api/server.ts'), { cwd: repoRoot, env: apiEnv, stdio: ['ignore', 'ignore', 'inherit'] });
  for (let i = 0; ; i++) {
    if (api.exitCode !== null) throw new Error(`api exited with ${api.exitCode}`);
    if (await fetch(`${apiUrl}/healthz`).then((r) => r.ok, () => false)) break;
    if (i > 1200) throw new Error('api not up in 120 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    apiUrl,
    apiPid: api.pid!,
    workerPid: worker.pid!,
    async stop() {
      await stopChild(api);
      await stopChild(worker);
    },
  };
}
