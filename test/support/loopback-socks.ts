import net from 'node:net';

/**
 * A SOCKS5 relay (RFC 1928, CONNECT only, no authentication) that reaches
 * nothing but this host's loopback: the browser tests' Chromium, in a
 * network namespace of its own, gets to the servers the tests started
 * through it, and to nothing else. Written by hand because what is needed is
 * forty lines and a refusal rule, and the SOCKS servers on npm are
 * unmaintained.
 */
export async function startLoopbackSocks(listen: string | number): Promise<net.Server> {
  const server = net.createServer((client) => {
    client.on('error', () => client.destroy());
    let buf = Buffer.alloc(0);
    let greeted = false;
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length > 512) return void client.destroy();
      if (!greeted) {
        // VER, NMETHODS, METHODS...
        if (buf.length < 2 || buf.length < 2 + buf[1]!) return;
        if (buf[0] !== 5 || !buf.subarray(2, 2 + buf[1]!).includes(0)) return void client.end(Buffer.from([5, 0xff]));
        buf = buf.subarray(2 + buf[1]!);
        greeted = true;
        client.write(Buffer.from([5, 0]));
      }
      const req = parseConnect(buf);
      if (req === 'more') return;
      client.off('data', onData);
      if (req === 'unsupported') return void client.end(reply(7));
      if (!isLoopback(req.host)) return void client.end(reply(2));
      client.pause();
      const upstream = net.connect(req.port, req.host);
      let connected = false;
      upstream.once('connect', () => {
        connected = true;
        client.write(reply(0));
        if (req.rest.length) upstream.write(req.rest);
        client.pipe(upstream).pipe(client);
        client.resume();
      });
      upstream.once('error', () => {
        if (connected) client.destroy();
        else client.end(reply(5));
      });
      client.once('close', () => upstream.destroy());
    };
    client.on('data', onData);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if (typeof listen === 'number') server.listen(listen, '127.0.0.1', resolve);
    else server.listen(listen, resolve);
  });
  return server;
}

type Connect = { host: string; port: number; rest: Buffer };

function parseConnect(b: Buffer): Connect | 'more' | 'unsupported' {
  // VER CMD RSV ATYP DST.ADDR DST.PORT
  if (b.length < 5) return 'more';
  if (b[0] !== 5 || b[1] !== 1) return 'unsupported';
  let host: string;
  let at: number;
  if (b[3] === 1) {
    at = 4 + 4;
    if (b.length < at + 2) return 'more';
    host = [...b.subarray(4, at)].join('.');
  } else if (b[3] === 3) {
    at = 5 + b[4]!;
    if (b.length < at + 2) return 'more';
    host = b.subarray(5, at).toString('latin1');
  } else if (b[3] === 4) {
    at = 4 + 16;
    if (b.length < at + 2) return 'more';
    const words: string[] = [];
    for (let i = 4; i < at; i += 2) words.push(b.readUInt16BE(i).toString(16));
    host = words.join(':');
  } else {
    return 'unsupported';
  }
  return { host, port: b.readUInt16BE(at), rest: b.subarray(at + 2) };
}

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (net.isIPv4(host)) return host.startsWith('127.');
  return net.isIPv6(host) && /^(0:){7}1$|^::1$/.test(host);
}

// REP codes: 0 succeeded, 2 not allowed by ruleset, 5 refused, 7 command not supported.
const reply = (rep: number): Buffer => Buffer.from([5, rep, 0, 1, 0, 0, 0, 0, 0, 0]);
