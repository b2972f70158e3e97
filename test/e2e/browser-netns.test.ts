import { execFile } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isolationUnavailable, launchBrowser } from '../support/browser.ts';

// The browser tests' Chromium runs in a network namespace of its own
// (launchBrowser), because Chromium cancels its in-flight requests with
// net::ERR_NETWORK_CHANGED when an address changes in its namespace, and the
// containers the tests start change the host's addresses all the time. This
// file performs that change during a page load: an address added to and
// removed from the host's loopback (127.x, made and removed here) while the
// server holds its answer. The isolated browser's load must finish. The same
// load in a browser on the host's namespace is the control: it shows the
// change really does cut loads, so the first test can fail.

const exec = promisify(execFile);
const why = isolationUnavailable();

// Chromium opens at most six connections to one host: the page below asks
// for eight scripts the server holds, so two wait for a connection, which is
// the state a network change cancels.
const SCRIPTS = 8;
const CONNECTIONS_PER_HOST = 6;

describe.skipIf(why !== undefined)(`Chromium's own network namespace${why ? ` (skipped: ${why})` : ''}`, () => {
  let server: http.Server;
  let base: string;
  let held: http.ServerResponse[] = [];
  let releasing = false;
  let onHeld: (() => void) | undefined;
  const answer = (res: http.ServerResponse) => res.writeHead(200, { 'content-type': 'text/javascript' }).end('window.ran++');
  const browsers: Browser[] = [];

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/') {
        const tags = Array.from({ length: SCRIPTS }, (_, i) => `<script src="/held/${i}"></script>`).join('');
        res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><title>t</title><script>window.ran = 0</script>${tags}`);
      } else if (req.url?.startsWith('/held/')) {
        // Once released, the requests that waited for a connection are answered as they come.
        if (releasing) return void answer(res);
        held.push(res);
        if (held.length === CONNECTIONS_PER_HOST) onHeld?.();
      } else {
        res.writeHead(404).end();
      }
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    for (const b of browsers) await b.close().catch(() => undefined);
    server?.closeAllConnections();
    server?.close();
  });

  /**
   * Loads the page; once six script requests are held and two wait for a
   * connection, adds and removes an address on the host's loopback, then
   * answers everything. Returns the scripts that ran and the failures seen.
   */
  async function loadAcrossAnAddressChange(isolated: boolean): Promise<{ ran: number; failures: string[] }> {
    const browser = await launchBrowser({ isolated });
    browsers.push(browser);
    const page = await browser.newPage();
    held = [];
    releasing = false;
    const failures: string[] = [];
    let onFailure: () => void = () => undefined;
    const failed = new Promise<void>((resolve) => (onFailure = resolve));
    page.on('requestfailed', (r) => {
      failures.push(`${r.url()}: ${r.failure()?.errorText}`);
      onFailure();
    });
    const sixHeld = new Promise<void>((resolve) => (onHeld = resolve));
    const load = page.goto(`${base}/`, { timeout: 30_000 });
    await sixHeld;
    // 127.255.x.y/32 on lo: an address no one uses, removed at once.
    const address = `127.255.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
    await exec('ip', ['addr', 'add', `${address}/32`, 'dev', 'lo']);
    await exec('ip', ['addr', 'del', `${address}/32`, 'dev', 'lo']);
    // A cut comes within moments of the change; give it at most two seconds.
    await Promise.race([failed, new Promise((r) => setTimeout(r, 2000))]);
    releasing = true;
    for (const res of held.splice(0)) answer(res);
    await load.catch((err: unknown) => failures.push(String(err)));
    const ran = await page.evaluate(() => (window as unknown as { ran: number }).ran).catch(() => -1);
    await page.close();
    return { ran, failures };
  }

  it('a page load survives an address change on the host', async () => {
    expect(await loadAcrossAnAddressChange(true)).toEqual({ ran: SCRIPTS, failures: [] });
  });

  it('control: in the host namespace the same load loses requests to ERR_NETWORK_CHANGED', async () => {
    const { failures } = await loadAcrossAnAddressChange(false);
    expect(failures.join('\n')).toContain('ERR_NETWORK_CHANGED');
  });
});
