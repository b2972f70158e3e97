// Runs before the gateway, as the agent user: fetches this agent's
// openclaw.json from Hangar with the single-use bootstrap token in its env
// (the config carries this start's gateway token) and writes it where
// OPENCLAW_CONFIG_PATH points (tmpfs: the provider keys in it never reach a
// disk), then writes the workspace files Hangar owns (SOUL.md, the
// personality). Exits non-zero, saying why in one line, when Hangar refuses or
// answers nonsense: the container stops and Hangar reports agent_start_failed
// with that line. Node built-ins only.
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

const CONFIG_URL = process.env.HANGAR_CONFIG_URL;
/** Good for one config fetch, this start only (the env var keeps its historical name). */
const BOOTSTRAP_TOKEN = process.env.HANGAR_GATEWAY_TOKEN ?? '';
const CONFIG_PATH = process.env.OPENCLAW_CONFIG_PATH;
const STATE_DIR = process.env.OPENCLAW_STATE_DIR;
/** Connection errors are retried this long (Hangar may be restarting). */
const RETRY_MS = 10_000;
/** Marks files Hangar wrote; one without it is OpenClaw's or the agent's and is never removed. */
const MARKER = '<!-- managed by Hangar';
const FILE_NAME = /^[A-Z]+\.md$/;

const log = (msg, fields = {}) => console.log(JSON.stringify({ at: new Date().toISOString(), msg, ...fields }));
function fatal(msg) {
  console.error(`hangar-entrypoint: ${msg}`);
  process.exit(1);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const describe = (err) => err?.cause?.code ?? err?.cause?.message ?? err?.message ?? String(err);

async function fetchJson(url, what, token) {
  const deadline = Date.now() + RETRY_MS;
  for (let attempt = 1; ; attempt++) {
    let res;
    try {
      res = await fetch(url, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' }, signal: AbortSignal.timeout(5000) });
    } catch (err) {
      // Only a connection failure is worth retrying; any HTTP answer is final.
      const wait = Math.min(250 * 2 ** (attempt - 1), 2000);
      if (Date.now() + wait > deadline) fatal(`cannot reach Hangar for ${what} at ${url}: ${describe(err)} (${attempt} attempts)`);
      log(`cannot reach Hangar for ${what}; retrying`, { error: describe(err), attempt });
      await sleep(wait);
      continue;
    }
    if ([401, 403, 404].includes(res.status)) fatal(`Hangar refused this agent's ${what} (HTTP ${res.status}): token wrong, expired or already used, or unknown agent`);
    if (!res.ok) fatal(`Hangar's ${what} endpoint answered HTTP ${res.status}`);
    try {
      return await res.json();
    } catch {
      fatal(`Hangar's ${what} endpoint answered something that is not JSON`);
    }
  }
}

/** Write-then-rename: a crash never leaves half a file for the gateway to read. */
async function writeAtomic(file, text, mode) {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode });
  await rename(tmp, file);
}

if (!CONFIG_URL || !BOOTSTRAP_TOKEN) fatal('HANGAR_CONFIG_URL and HANGAR_GATEWAY_TOKEN must both be set');
if (!CONFIG_PATH || !STATE_DIR) fatal('OPENCLAW_CONFIG_PATH and OPENCLAW_STATE_DIR must both be set');

// The image has no coreutils: make HOME and the state dir here.
await mkdir(process.env.HOME ?? STATE_DIR, { recursive: true });
await mkdir(STATE_DIR, { recursive: true });
if (process.env.TMPDIR) await mkdir(process.env.TMPDIR, { recursive: true });

const config = await fetchJson(CONFIG_URL, 'config', BOOTSTRAP_TOKEN);
if (!config || typeof config !== 'object' || Array.isArray(config)) fatal('config is not a JSON object');
const gatewayToken = config.gateway?.auth?.token;
if (typeof gatewayToken !== 'string' || gatewayToken.length < 16) fatal('config carries no gateway token (gateway.auth.token)');
// Checked by OpenClaw at start; written as is.
await writeAtomic(CONFIG_PATH, `${JSON.stringify(config, null, 2)}\n`, 0o600);

// The bootstrap token is spent: this start's gateway token asks for the rest.
const { files = {} } = (await fetchJson(`${CONFIG_URL}/workspace`, 'workspace files', gatewayToken)) ?? {};
const workspace = config.agents?.defaults?.workspace ?? path.join(STATE_DIR, 'workspace');
for (const [name, content] of Object.entries(files)) {
  if (!FILE_NAME.test(name)) fatal(`refusing workspace file name ${JSON.stringify(name)}`);
  const file = path.join(workspace, name);
  if (typeof content === 'string') {
    await writeAtomic(file, content, 0o644);
  } else {
    const current = await readFile(file, 'utf8').catch(() => null);
    if (current?.startsWith(MARKER)) await rm(file, { force: true });
  }
}
log('config written', { providers: Object.keys(config.models?.providers ?? {}), primary: config.agents?.defaults?.model?.primary ?? null, files: Object.keys(files) });
