import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Locator } from 'playwright-core';
import { startLoopbackSocks } from './loopback-socks.ts';

// playwright-core has no test runner matchers: these small waits stand in for
// them, each bounded in time and count.

export async function seeText(locator: Locator, expected: string | RegExp, opts: { exact?: boolean; timeout?: number } = {}): Promise<string> {
  const deadline = Date.now() + (opts.timeout ?? 15_000);
  let last = '';
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    last = ((await locator.first().textContent({ timeout: 1000 }).catch(() => '')) ?? '').trim();
    const ok = typeof expected === 'string' ? (opts.exact ? last === expected : last.includes(expected)) : expected.test(last);
    if (ok) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`expected ${locator} to ${opts.exact ? 'be' : 'contain'} ${String(expected)}, last saw "${last}"`);
}

export async function seeCount(locator: Locator, n: number, timeout = 15_000): Promise<void> {
  const deadline = Date.now() + timeout;
  let last = -1;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    last = await locator.count();
    if (last === n) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`expected ${n} of ${locator}, saw ${last}`);
}

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const IN_NETNS = path.join(import.meta.dirname, 'chromium-netns.sh');
const BASE_ARGS = ['--no-sandbox', '--disable-dev-shm-usage'];

/**
 * Launches Chromium for a browser test, in a network namespace of its own
 * when this machine allows it (root, `unshare`, `ip`).
 *
 * Why: Chromium cancels the requests it has in flight with
 * net::ERR_NETWORK_CHANGED whenever an address appears or disappears in its
 * network namespace, loopback requests included. Docker adds a bridge address
 * or a veth for every container it starts, and the browser tests' own agents
 * start and stop in the background (rollouts, restarts, the reaper), so on the
 * host that happens at any moment: a clean-clone CI run saw a page load cut
 * three times in a row. In a namespace of its own nothing changes. The
 * browser's traffic leaves it through a SOCKS relay that reaches only this
 * host's loopback, so the URLs the tests use stay the same, and the browser
 * can reach nothing else.
 *
 * Elsewhere (not root, say) Chromium runs as before, with a warning: there a
 * test can fail with ERR_NETWORK_CHANGED while containers start.
 * HANGAR_TEST_BROWSER_NETNS=0 chooses that path on purpose.
 */
export async function launchBrowser(opts: { isolated?: boolean } = {}): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install chromium, or set CHROMIUM_PATH`);
  const why = opts.isolated === false ? 'not asked for' : isolationUnavailable();
  if (why) {
    if (opts.isolated !== false) console.warn(`[browser] Chromium shares the host's network namespace (${why}): a load may fail with ERR_NETWORK_CHANGED while containers start`);
    return chromium.launch({ executablePath: CHROMIUM, args: BASE_ARGS });
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'hangar-browser-'));
  const socket = path.join(dir, 'relay.sock');
  const relay = await startLoopbackSocks(socket);
  const cleanUp = (): void => {
    relay.close();
    void rm(dir, { recursive: true, force: true });
  };
  try {
    const browser = await chromium.launch({
      executablePath: IN_NETNS,
      args: [...BASE_ARGS, '--proxy-server=socks5://127.0.0.1:1080', '--proxy-bypass-list=<-loopback>'],
      env: { ...process.env, HANGAR_BROWSER_CHROMIUM: CHROMIUM, HANGAR_BROWSER_RELAY: socket, HANGAR_BROWSER_NODE: process.execPath },
    });
    browser.once('disconnected', cleanUp);
    return browser;
  } catch (err) {
    cleanUp();
    throw err;
  }
}

let isolation: string | undefined | null = null;
/** Why Chromium cannot get a namespace of its own here, or undefined if it can (checked once). */
export function isolationUnavailable(): string | undefined {
  if (isolation !== null) return isolation;
  if (process.env.HANGAR_TEST_BROWSER_NETNS === '0') return (isolation = 'HANGAR_TEST_BROWSER_NETNS=0');
  const probe = spawnSync('unshare', ['--net', '--', 'ip', 'link', 'set', 'lo', 'up'], { encoding: 'utf8', timeout: 10_000 });
  isolation = probe.status === 0 ? undefined : `unshare --net failed: ${(probe.error?.message ?? probe.stderr).trim() || `exit ${probe.status}`}`;
  return isolation;
}
