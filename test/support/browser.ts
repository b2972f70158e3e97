import type { Locator } from 'playwright-core';

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
