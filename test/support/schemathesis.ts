import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from '../../core/runtime/stack.runtime.ts';

// Schemathesis (PyPI; `.ci/run` installs the pinned version) run as a child
// process against a Hangar's own OpenAPI document. Its NDJSON report is read
// back so a failing test lists every failing request, not just an exit code.

export const SCHEMATHESIS_VERSION = '4.32.5';
export const HOOKS_FILE = path.join(repoRoot, 'test/fuzz/hooks.py');

/** `st` on PATH, in Python's scripts folder (pip may not put it on PATH), or at SCHEMATHESIS_PATH. */
export function findSchemathesis(): string {
  const candidates: string[] = [];
  if (process.env.SCHEMATHESIS_PATH) candidates.push(process.env.SCHEMATHESIS_PATH);
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) if (dir) candidates.push(path.join(dir, 'st'));
  try {
    const scripts = execFileSync('python3', ['-c', 'import sysconfig; print(sysconfig.get_path("scripts"))'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    candidates.push(path.join(scripts, 'st'));
  } catch {
    // no python: other candidates remain
  }
  // Another program may be called `st` (suckless' terminal): ask each candidate what it is.
  const isSchemathesis = (c: string) => {
    try {
      return /^st, version /m.test(execFileSync(c, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 20_000 }));
    } catch {
      return false;
    }
  };
  const found = candidates.find((c) => existsSync(c) && isSchemathesis(c));
  if (!found) throw new Error(`Schemathesis not found: python3 -m pip install schemathesis==${SCHEMATHESIS_VERSION} (or set SCHEMATHESIS_PATH)`);
  return found;
}

export interface FuzzRun {
  /** Names the run in logs and kept reports, e.g. admin-negative. */
  label: string;
  /** Schema URL, e.g. http://127.0.0.1:1234/docs/json */
  schemaUrl: string;
  token: string;
  mode: 'positive' | 'negative' | 'all';
  seed: number;
  maxExamples: number;
  checks: string[];
  excludePathRegex?: string;
  /** Ids (users, tokens) the hooks keep out of path parameters. */
  protectedIds: string[];
  /** Wall-clock cap for the whole schemathesis process. */
  timeoutMs: number;
}

export interface FuzzFailure {
  check: string;
  title: string;
  message: string;
  request: string;
  status: number | null;
  body: string;
  caseId: string;
}

export interface FuzzResult {
  exitCode: number | null;
  /** Test cases sent (one per request). */
  cases: number;
  /** Responses by status class, e.g. { '2xx': 10, '4xx': 300 }. */
  statuses: Record<string, number>;
  /** Operations that got at least one response. */
  operations: Set<string>;
  failures: FuzzFailure[];
  /** Schemathesis' own errors (schema problems, network errors): these fail the test too. */
  errors: string[];
  /** The end of schemathesis' console output, for context when something is off. */
  outputTail: string;
  command: string;
}

interface Interaction {
  request?: { method?: string; uri?: string; body?: { $base64?: string } | string | null };
  response?: { status_code?: number; content?: string; body?: { $base64?: string } | string | null } | null;
}

const decode = (b: { $base64?: string } | string | null | undefined) =>
  !b ? '' : typeof b === 'string' ? b : b.$base64 ? Buffer.from(b.$base64, 'base64').toString('utf8') : '';

export async function runSchemathesis(run: FuzzRun): Promise<FuzzResult> {
  const st = findSchemathesis();
  // Its own working directory: schemathesis writes reports (and nothing else, with
  // the example database off) where it runs, never into the repository.
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hangar-fuzz-'));
  const args = [
    'run', run.schemaUrl,
    '-H', `Authorization: Bearer ${run.token}`,
    '--mode', run.mode,
    '--phases', 'examples,coverage,fuzzing',
    '--max-examples', String(run.maxExamples),
    '--seed', String(run.seed),
    '--checks', run.checks.join(','),
    '--max-failures', '500',
    '--request-timeout', '30',
    '--generation-database', 'none',
    '--report', 'ndjson',
    '--report-dir', dir,
    '--no-color',
    ...(run.excludePathRegex ? ['--exclude-path-regex', run.excludePathRegex] : []),
  ];
  const command = `st ${args.map((a) => (a.startsWith('Authorization:') ? "'Authorization: Bearer …'" : /[\s|$()^]/.test(a) ? `'${a}'` : a)).join(' ')}`;
  const child = spawn(st, args, {
    cwd: dir,
    env: { ...process.env, SCHEMATHESIS_HOOKS: HOOKS_FILE, HANGAR_FUZZ_PROTECTED_IDS: run.protectedIds.join(','), NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d) => {
    output += d;
    if (process.env.HANGAR_TEST_VERBOSE) process.stderr.write(d);
  });
  child.stderr!.on('data', (d) => (output += d));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, run.timeoutMs);
  const exitCode = await new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  clearTimeout(timer);
  try {
    const result = readReport(dir, exitCode, output, command);
    if (timedOut) result.errors.push(`schemathesis ran past its ${run.timeoutMs / 1000}s cap and was killed`);
    return result;
  } finally {
    // HANGAR_FUZZ_REPORT_DIR keeps every request and response (NDJSON) for a closer look.
    const keep = process.env.HANGAR_FUZZ_REPORT_DIR;
    if (keep) {
      await mkdir(keep, { recursive: true });
      for (const f of readdirSync(dir).filter((n) => n.endsWith('.ndjson'))) await copyFile(path.join(dir, f), path.join(keep, `${run.label}-${f}`));
    }
    await rm(dir, { recursive: true, force: true });
  }
}

function readReport(dir: string, exitCode: number | null, output: string, command: string): FuzzResult {
  const result: FuzzResult = {
    exitCode,
    cases: 0,
    statuses: {},
    operations: new Set(),
    failures: [],
    errors: [],
    outputTail: output.slice(-4000),
    command,
  };
  const file = readdirSync(dir).find((f) => f.endsWith('.ndjson'));
  if (!file) {
    result.errors.push(`schemathesis wrote no report (exit ${exitCode})`);
    return result;
  }
  const seen = new Set<string>();
  for (const line of readFileSync(path.join(dir, file), 'utf8').split('\n')) {
    if (!line.trim()) continue;
    let event: Record<string, Record<string, unknown>>;
    try {
      event = JSON.parse(line) as Record<string, Record<string, unknown>>;
    } catch {
      // The last line of a run killed at its cap is cut off; the cap's own error says why.
      result.errors.push(`unreadable report line (${line.length} characters): ${line.slice(0, 200)}`);
      continue;
    }
    const [kind, data] = Object.entries(event)[0];
    if (kind === 'NonFatalError' || kind === 'FatalError') {
      result.errors.push(`${kind} ${String(data.label ?? '')}: ${JSON.stringify(data.value ?? data).slice(0, 600)}`);
      continue;
    }
    if (kind !== 'ScenarioFinished') continue;
    const recorder = data.recorder as {
      label: string;
      checks?: Record<string, Array<{ name: string; status: string; failure_info?: { failure: { title: string; message: string } } }>>;
      interactions?: Record<string, Interaction>;
    };
    for (const [caseId, interaction] of Object.entries(recorder.interactions ?? {})) {
      if (seen.has(caseId)) continue;
      seen.add(caseId);
      result.cases++;
      const status = interaction.response?.status_code;
      if (status) {
        result.statuses[`${String(status)[0]}xx`] = (result.statuses[`${String(status)[0]}xx`] ?? 0) + 1;
        result.operations.add(recorder.label);
      }
    }
    for (const [caseId, checks] of Object.entries(recorder.checks ?? {})) {
      for (const c of checks) {
        if (c.status !== 'failure') continue;
        const key = `${caseId}/${c.name}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const i = recorder.interactions?.[caseId];
        const reqBody = decode(i?.request?.body);
        result.failures.push({
          check: c.name,
          title: c.failure_info?.failure.title ?? c.name,
          message: c.failure_info?.failure.message ?? '',
          request: `${i?.request?.method ?? '?'} ${i?.request?.uri ?? recorder.label}${reqBody ? ` body=${reqBody.slice(0, 1000)}` : ''}`,
          status: i?.response?.status_code ?? null,
          body: decode(i?.response?.body ?? i?.response?.content).slice(0, 300),
          caseId,
        });
      }
    }
  }
  return result;
}

/** One line per failing request, for the assertion message. */
export function describeFailures(r: FuzzResult, seed: number): string {
  const lines = r.failures.map((f) => `- [${f.check}] ${f.title}${f.message ? ` (${f.message.replace(/\s+/g, ' ').slice(0, 200)})` : ''}\n    ${f.request}\n    → ${f.status ?? 'no response'} ${f.body}`);
  return [
    `${r.failures.length} failing request(s), ${r.errors.length} schemathesis error(s); seed ${seed} (HANGAR_FUZZ_SEED=${seed} reproduces)`,
    `command: ${r.command}`,
    ...lines,
    ...r.errors.map((e) => `- error: ${e}`),
  ].join('\n');
}
