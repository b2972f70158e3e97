import { mkdir, readdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Docker from 'dockerode';
import { startTestStack } from '../support/global-setup.ts';
import { formatTable, settle, type BenchContext, type BenchModule, type BenchRow } from './bench.harness.ts';

// `npm run bench`: every comparison in one process tree. Hangar against the
// bare minimum doing the same job (straight to the container, bare dockerode,
// configurable-http-proxy, docker cp), both measured in this run on this
// machine, reported as ratios (absolute figures move with the machine; ratios
// hold). Each `test/bench/<name>.bench.ts` is a module (bench.harness.ts says
// what it exports); BENCH_ONLY=proxy,storm or BENCH_SKIP=rollout pick them.
const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
/** Modules that run only when BENCH_ONLY names them (OpenClaw builds a large image and boots for seconds). */
const OPT_IN = new Set(['openclaw']);
const list = (v: string | undefined) => new Set((v ?? '').split(',').map((s) => s.trim()).filter(Boolean));

async function main() {
  const only = list(process.env.BENCH_ONLY);
  const skip = list(process.env.BENCH_SKIP);
  const names = (await readdir(here))
    .filter((f) => f.endsWith('.bench.ts') && f !== 'run.bench.ts')
    .map((f) => f.replace(/\.bench\.ts$/, ''))
    .filter((n) => (only.size === 0 ? !OPT_IN.has(n) : only.has(n)) && !skip.has(n))
    .sort();
  if (names.length === 0) throw new Error('no bench module selected (BENCH_ONLY / BENCH_SKIP)');
  const log = (m: string) => process.stderr.write(`[bench] ${m}\n`);
  log(`modules: ${names.join(', ')}`);

  const stack = await startTestStack((m) => log(`stack: ${m}`));
  const ctx: BenchContext = { stack: stack.info, docker: new Docker(), log };
  const rows: BenchRow[] = [];
  const failures: string[] = [];
  /** How long each module waited for the machine to be quiet, and how busy it was when it began. */
  const settled: Record<string, { waitedMs: number; busy: number; quiet: boolean }> = {};
  const started = new Date();
  try {
    for (const name of names) {
      const s = await settle();
      settled[name] = s;
      log(`${name}: ${s.quiet ? 'machine quiet' : 'machine still BUSY'} after ${(s.waitedMs / 1000).toFixed(0)} s (${(s.busy * 100).toFixed(0)} % of the CPUs busy)`);
      const t0 = performance.now();
      log(`${name}: running`);
      try {
        const mod = (await import(pathToFileURL(path.join(here, `${name}.bench.ts`)).href)) as { default: BenchModule };
        const got = await mod.default({ ...ctx, log: (m) => log(`${name}: ${m}`) });
        rows.push(...got.map((r) => ({ ...r, module: name })));
      } catch (err) {
        // One module failing still leaves the others' figures.
        failures.push(`${name}: ${(err as Error).stack ?? err}`);
        log(`${name}: FAILED ${(err as Error).message}`);
      }
      log(`${name}: done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
  } finally {
    await stack.stop();
  }

  console.log(formatTable(rows));
  const notes = new Set(rows.filter((r) => r.note).map((r) => `  ${r.module}: ${r.note}`));
  for (const n of notes) console.log(n);
  const dir = path.join(repo, 'bench-results');
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `bench-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(file, `${JSON.stringify({
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: { cpus: os.cpus().length, memoryGb: Math.round(os.totalmem() / 2 ** 30), loadavg: os.loadavg(), node: process.version },
    modules: names,
    settled,
    rows,
    failures,
  }, null, 2)}\n`);
  console.log(`\nwritten to ${path.relative(repo, file)}`);
  if (failures.length) {
    console.error(`\n${failures.length} module(s) failed:\n${failures.join('\n')}`);
  }
  return failures.length ? 1 : 0;
}

// Explicit: a pool or timer some library keeps must not hold the run open.
process.exit(await main());
