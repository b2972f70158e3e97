import type { Locator, Page, Request } from 'playwright-core';

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

/**
 * Chromium fails the requests it has in flight with net::ERR_NETWORK_CHANGED
 * whenever the host's network interfaces change, loopback requests included
 * (a known Chromium behaviour). Docker adds and removes a bridge or a veth
 * for every agent the tests beside this one start, so on a machine running
 * the suite it can happen between any two requests: a clean-clone CI run saw
 * one of the web UI's module scripts fail so, and the page never rendered.
 * It is the browser's view of the host, not something the app did.
 */
export const isNetworkChange = (text: string): boolean => text.includes('ERR_NETWORK_CHANGED');

/**
 * Opens `url` and waits for `ready`. A load that a network change cut short
 * is loaded again at once, at most `attempts` times in all; any other
 * failure is thrown as it is.
 */
export async function openSteadily(page: Page, url: string, ready: () => Promise<unknown>, attempts = 3): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    let onFail: (r: Request) => void = () => undefined;
    const cut = new Promise<'cut'>((resolve) => {
      onFail = (r) => {
        if (isNetworkChange(r.failure()?.errorText ?? '')) resolve('cut');
      };
    });
    page.on('requestfailed', onFail);
    const load = (async () => {
      await page.goto(url);
      await ready();
      return 'ready' as const;
    })();
    // A load that loses the race may still fail later: that is expected.
    load.catch(() => undefined);
    try {
      const got = await Promise.race([load, cut]).catch((err: unknown) => {
        if (isNetworkChange(String(err))) return 'cut' as const;
        throw err;
      });
      if (got === 'ready') return;
    } finally {
      page.off('requestfailed', onFail);
    }
  }
  throw new Error(`${url}: all ${attempts} loads were cut short by host network changes (net::ERR_NETWORK_CHANGED)`);
}
