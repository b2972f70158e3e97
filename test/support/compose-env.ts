import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { repoRoot } from '../../core/runtime/paths.runtime.ts';

// docker/compose.yaml as data, for the tests that run the production image
// with exactly the environment the compose file gives each service (so the
// two cannot drift) and for the unit test that checks the file's shape.

export const COMPOSE_PATH = path.join(repoRoot, 'docker/compose.yaml');

export interface ComposeService {
  image?: string;
  command?: string[];
  user?: string;
  network_mode?: string;
  cap_add?: string[];
  volumes?: string[];
  secrets?: string[];
  environment?: Record<string, string | number | boolean | null>;
  depends_on?: Record<string, { condition: string }>;
  profiles?: string[];
}

export interface ComposeFile {
  'x-hangar-env': Record<string, string>;
  services: Record<string, ComposeService>;
  secrets: Record<string, { file: string }>;
}

export function readCompose(): ComposeFile {
  // merge: the file shares settings through YAML merge keys (<<: *hangar), as compose reads them.
  return parse(readFileSync(COMPOSE_PATH, 'utf8'), { merge: true }) as ComposeFile;
}

/**
 * Compose's interpolation: `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
 * `${VAR:?message}`, `${VAR?message}` and `$$` for a literal `$`.
 */
export function interpolate(value: string, vars: Record<string, string | undefined>): string {
  return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}/g, (whole, name: string | undefined, colon: string, op: string, arg: string) => {
    if (!name) return '$';
    const v = vars[name];
    const missing = colon ? !v : v === undefined;
    if (!op) return v ?? '';
    if (!missing) return v!;
    if (op === '-') return arg;
    throw new Error(`compose: ${name} is required: ${arg || whole}`);
  });
}

/** One service's environment after interpolation; empty values left out (compose passes them as empty, which Hangar reads as unset). */
export function serviceEnv(compose: ComposeFile, service: string, vars: Record<string, string | undefined>): Record<string, string> {
  const env = compose.services[service]?.environment;
  if (!env) throw new Error(`compose: no service ${service} with an environment`);
  const out: Record<string, string> = {};
  for (const [k, raw] of Object.entries(env)) {
    const v = interpolate(raw === null ? '' : String(raw), vars);
    if (v !== '') out[k] = v;
  }
  return out;
}
