// Runs inside the namespace chromium-netns.sh made: brings its loopback up,
// listens on 127.0.0.1:1080 there and passes every connection, byte for
// byte, to the SOCKS relay the test process keeps on a Unix socket (a
// filesystem path, which namespaces do not separate), then execs Chromium
// with the arguments Playwright gave, fds 3 and 4 (its DevTools pipe)
// included. Chromium is told to use that port as its SOCKS proxy.
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';

const chromium = process.env.HANGAR_BROWSER_CHROMIUM;
const relay = process.env.HANGAR_BROWSER_RELAY;
// launchBrowser points Chromium at this port.
const PORT = 1080;
if (!chromium || !relay) {
  console.error('chromium-netns: HANGAR_BROWSER_CHROMIUM and HANGAR_BROWSER_RELAY must be set');
  process.exit(2);
}
const up = spawnSync('ip', ['link', 'set', 'lo', 'up'], { stdio: 'inherit' });
if (up.status !== 0) {
  console.error(`chromium-netns: could not bring loopback up (ip exited ${up.status ?? up.error})`);
  process.exit(2);
}

const server = net.createServer((inside) => {
  const outside = net.connect(relay);
  inside.pipe(outside).pipe(inside);
  inside.on('error', () => outside.destroy());
  outside.on('error', () => inside.destroy());
});
server.on('error', (err) => {
  console.error(`chromium-netns: ${err.message}`);
  process.exit(2);
});
server.listen(PORT, '127.0.0.1', () => {
  const child = spawn(chromium, process.argv.slice(2), { stdio: [0, 1, 2, 3, 4] });
  child.on('error', (err) => {
    console.error(`chromium-netns: ${err.message}`);
    process.exit(2);
  });
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(sig, () => child.kill(sig));
});
