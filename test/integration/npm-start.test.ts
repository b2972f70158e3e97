import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { repoRoot } from '../../core/runtime/stack.runtime.ts';
import { freePort } from '../support/ports.ts';

// `npm start` is the whole stack in one command: a SIGTERM (or SIGINT) to the
// npm process must stop every process it started — worker, API, the Temporal
// dev server, Postgres — not only npm itself. The stack runs in its own
// process group with its own data dir and ports, so what is left over is
// exactly the processes of that group.

/** Pids of every live process in a process group (from /proc). */
async function processGroup(pgid: number): Promise<Array<{ pid: number; cmd: string }>> {
  const out: Array<{ pid: number; cmd: string }> = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      // Fields after the parenthesised command: state ppid pgrp …
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) !== pgid || fields[0] === 'Z') continue;
      const cmd = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).replace(/\0/g, ' ').trim();
      out.push({ pid: Number(entry), cmd });
    } catch {
      // the process ended while we looked
    }
  }
  return out;
}

const portFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });

describe('npm start', () => {
  let child: ChildProcess | null = null;
  let dataDir = '';
  let output = '';

  afterAll(async () => {
    // Whatever the outcome, nothing of this stack outlives the file.
    if (child?.pid) {
      for (const p of await processGroup(child.pid)) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal} to the npm process stops every child (Temporal and Postgres included)`, async () => {
      dataDir = await mkdtemp(path.join(os.tmpdir(), 'hangar-npm-start-'));
      // Postgres runs as its own user when we are root.
      await chmod(dataDir, 0o755);
      const ports = { api: await freePort(), pg: await freePort(), temporal: await freePort(), ui: await freePort() };
      output = '';
      child = spawn('npm', ['start'], {
        cwd: repoRoot,
        // Its own process group: every descendant is findable, and killable in afterAll.
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          HANGAR_DATA_DIR: dataDir,
          PORT: String(ports.api),
          HOST: '127.0.0.1',
          HANGAR_PG_PORT: String(ports.pg),
          HANGAR_TEMPORAL_PORT: String(ports.temporal),
          HANGAR_TEMPORAL_UI_PORT: String(ports.ui),
          HANGAR_AGENT_IMAGE: inject('stack').agentImage,
          LOG_LEVEL: 'warn',
          DATABASE_URL: '',
          TEMPORAL_ADDRESS: '',
        },
      });
      child.stdout!.on('data', (d) => (output += d));
      child.stderr!.on('data', (d) => (output += d));
      const pgid = child.pid!;

      // Ready: the API answers and the worker said so.
      const deadline = Date.now() + 150_000;
      for (let i = 0; ; i++) {
        const up = await fetch(`http://127.0.0.1:${ports.api}/healthz`).then((r) => r.ok, () => false);
        if (up && output.includes('[worker] ready')) break;
        if (child.exitCode !== null || Date.now() > deadline || i > 1500) throw new Error(`npm start not ready:\n${output.slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const running = await processGroup(pgid);
      expect(running.some((p) => p.cmd.includes('temporal') && p.cmd.includes('start-dev'))).toBe(true);
      expect(running.some((p) => /\/postgres\b/.test(p.cmd))).toBe(true);
      // The API and the worker run with the process defaults (two malloc arenas), unless the operator said otherwise.
      const hangarProcesses = running.filter((p) => /(api\/server|worker\/main)\.[jt]s/.test(p.cmd));
      expect(hangarProcesses.map((p) => p.cmd.match(/(api|worker)\//)?.[1]).sort()).toEqual(['api', 'worker']);
      for (const p of hangarProcesses) {
        const environ = (await readFile(`/proc/${p.pid}/environ`, 'utf8')).split('\0');
        expect(environ, p.cmd).toContain(process.env.MALLOC_ARENA_MAX ? `MALLOC_ARENA_MAX=${process.env.MALLOC_ARENA_MAX}` : 'MALLOC_ARENA_MAX=2');
      }

      // The signal goes to npm alone, the way a supervisor or `kill` sends it.
      process.kill(pgid, signal);

      let left = running;
      const stopBy = Date.now() + 60_000;
      for (let i = 0; i < 600 && Date.now() < stopBy; i++) {
        left = await processGroup(pgid);
        if (left.length === 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(left.map((p) => `${p.pid} ${p.cmd}`), output.slice(-2000)).toEqual([]);
      // The supervisor's ordered stop ran to its end (nothing else exited the process first).
      expect(output).toContain('[hangar] stopped; data kept');
      for (const [name, port] of Object.entries(ports)) expect(await portFree(port), `${name} port ${port} still taken`).toBe(true);
      await rm(dataDir, { recursive: true, force: true });
      dataDir = '';
    }, 240_000);
  }
});
