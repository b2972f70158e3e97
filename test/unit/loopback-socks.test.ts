import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLoopbackSocks } from '../support/loopback-socks.ts';

// The SOCKS relay that lets the browser tests' namespaced Chromium reach the
// servers on this host's loopback, and nothing else. Only loopback sockets here:
// a refused destination is refused before any connection is tried.

let relay: net.Server;
let relayPort: number;
let web: http.Server;
let webPort: number;

beforeAll(async () => {
  relay = await startLoopbackSocks(0);
  relayPort = (relay.address() as AddressInfo).port;
  web = http.createServer((_req, res) => res.end('hello from loopback'));
  web.listen(0, '127.0.0.1');
  await once(web, 'listening');
  webPort = (web.address() as AddressInfo).port;
});
afterAll(() => {
  relay.close();
  web.close();
});

const ipv4 = (host: string, port: number) => Buffer.from([5, 1, 0, 1, ...host.split('.').map(Number), port >> 8, port & 0xff]);
const domain = (host: string, port: number) => Buffer.from([5, 1, 0, 3, host.length, ...Buffer.from(host), port >> 8, port & 0xff]);

/** Greets, asks for `request`, and returns the reply code and whatever followed (at most 2 s). */
async function ask(request: Buffer, after?: Buffer, splitEvery = 0): Promise<{ rep: number; rest: string }> {
  const c = net.connect(relayPort, '127.0.0.1');
  await once(c, 'connect');
  const bytes = Buffer.concat([Buffer.from([5, 1, 0]), request, after ?? Buffer.alloc(0)]);
  if (splitEvery > 0) {
    for (let i = 0; i < bytes.length; i += splitEvery) {
      c.write(bytes.subarray(i, i + splitEvery));
      await new Promise((r) => setImmediate(r));
    }
  } else {
    c.write(bytes);
  }
  const chunks: Buffer[] = [];
  c.on('data', (d: Buffer) => chunks.push(d));
  await Promise.race([once(c, 'close'), new Promise((r) => setTimeout(r, 2000))]);
  c.destroy();
  const all = Buffer.concat(chunks);
  expect([...all.subarray(0, 2)]).toEqual([5, 0]);
  return { rep: all[3]!, rest: all.subarray(12).toString() };
}

const GET = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');

describe('loopback SOCKS relay', () => {
  it('relays to a server on 127.0.0.1, by address or as localhost, even when the bytes come one at a time', async () => {
    expect((await ask(ipv4('127.0.0.1', webPort), GET)).rest).toContain('hello from loopback');
    expect((await ask(domain('localhost', webPort), GET)).rest).toContain('hello from loopback');
    expect((await ask(ipv4('127.0.0.1', webPort), GET, 1)).rest).toContain('hello from loopback');
  });

  it('refuses any destination off loopback (rule set), and says so', async () => {
    for (const req of [ipv4('10.0.0.1', 80), ipv4('192.168.1.1', 443), ipv4('169.254.169.254', 80), domain('example.com', 80), domain('127.0.0.1.nip.io', 80)]) {
      expect((await ask(req)).rep).toBe(2);
    }
  });

  it('answers a closed loopback port with "refused", and commands other than CONNECT with "not supported"', async () => {
    const closed = net.createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as AddressInfo).port;
    closed.close();
    await once(closed, 'close');
    expect((await ask(ipv4('127.0.0.1', port))).rep).toBe(5);
    const bind = ipv4('127.0.0.1', webPort);
    bind[1] = 2;
    expect((await ask(bind)).rep).toBe(7);
  });
});
