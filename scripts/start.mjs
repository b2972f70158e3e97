#!/usr/bin/env node
// `npm start`: install what is missing, then run the whole stack
// (scripts/run-hangar.ts). Plain JS so it runs before dependencies exist.
import { spawnSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const step = (cmd, args) => {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};

if (!existsSync(path.join(root, 'node_modules/.package-lock.json'))) {
  console.log('[hangar] installing dependencies…');
  // npm install, pinned by the lockfile (see .ci/run for why not npm ci).
  step('npm', ['install', '--no-audit', '--no-fund']);
}
// Made when missing, and again when schema.prisma changed since (a pull that brought a migration).
step(process.execPath, ['scripts/prisma-generate.mjs', '--if-stale']);

const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/run-hangar.ts', ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
});
// Ctrl-C reaches the child through the terminal's process group; a signal sent
// to this process alone (SIGTERM from a supervisor, `npm start` forwarding it)
// is passed on, and run-hangar stops every piece it started.
const stop = (sig) => {
  if (child.exitCode === null && child.signalCode === null) child.kill(sig);
};
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => stop(sig === 'SIGHUP' ? 'SIGTERM' : sig));
// Orphaned: whatever started us (npm, a shell) died without passing its signal
// on. Stop too, rather than keep a whole stack running that nobody owns.
const parent = process.ppid;
const watchdog = setInterval(() => {
  if (process.ppid !== parent) stop('SIGTERM');
}, 500);
watchdog.unref();
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
