import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.ts';

// Temporal's time-skipping test server, without GitHub. The SDK's default
// (`cached-download`) fetches a native binary from GitHub releases, which CI
// cannot reach; the same server is published on Maven Central as a Java jar.
// Maven fetches it (and its runtime dependencies) once into
// .cache/temporal-test-server/, and a small wrapper script runs it with the
// arguments the SDK passes to a test-server executable (the port, then extraArgs).

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const pom = path.join(root, 'test/support/temporal-test-server/pom.xml');
export const testServerCacheDir = path.join(root, '.cache/temporal-test-server');

function run(cmd: string, args: string[]): { status: number | null; output: string; missing: boolean } {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', timeout: 10 * 60_000 });
  const missing = (r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}`, missing };
}

/**
 * The path of an executable that starts the test server. Idempotent: the
 * Maven fetch runs only when the pom changed or the cache is missing.
 * `TEMPORAL_TEST_SERVER_PATH` (an existing test-server executable) skips all of it.
 */
export async function ensureTemporalTestServer(log: (m: string) => void = (m) => console.log(`[test-server] ${m}`)): Promise<string> {
  const given = process.env.TEMPORAL_TEST_SERVER_PATH;
  if (given) {
    if (!existsSync(given)) throw new Error(`TEMPORAL_TEST_SERVER_PATH=${given} does not exist`);
    return given;
  }
  const java = run('java', ['-version']);
  if (java.missing || java.status !== 0) {
    throw new Error('The workflow tests need Java 17+ for Temporal\'s test server: apt-get install default-jre-headless');
  }
  // The class archive belongs to one JVM build: a new Java means a new archive.
  const stampOf = createHash('sha256').update(readFileSync(pom)).update(java.output).digest('hex');
  const stamp = path.join(testServerCacheDir, 'stamp');
  const wrapper = path.join(testServerCacheDir, 'temporal-test-server');
  if (existsSync(wrapper) && existsSync(stamp) && readFileSync(stamp, 'utf8') === stampOf) return wrapper;
  const started = Date.now();
  log('fetching io.temporal:temporal-test-server from Maven Central (once)');
  mkdirSync(testServerCacheDir, { recursive: true });
  // A fresh directory renamed into place: a run that dies half-way leaves no half a classpath.
  const tmp = path.join(testServerCacheDir, `lib.${process.pid}`);
  const lib = path.join(testServerCacheDir, 'lib');
  rmSync(tmp, { recursive: true, force: true });
  const mvn = run('mvn', ['-q', '-B', '-f', pom, 'dependency:copy-dependencies', `-DoutputDirectory=${tmp}`]);
  if (mvn.missing) throw new Error('The workflow tests fetch Temporal\'s test server with Maven: apt-get install maven');
  if (mvn.status !== 0 || !existsSync(path.join(tmp, 'temporal-test-server-1.38.0.jar'))) {
    rmSync(tmp, { recursive: true, force: true });
    const tail = mvn.output.trim().split('\n').slice(-15).join('\n');
    throw new Error(
      `Could not fetch Temporal's test server from Maven Central (mvn exited ${mvn.status}). ` +
        `Is https://repo.maven.apache.org reachable (or ~/.m2 populated)? Or set TEMPORAL_TEST_SERVER_PATH.\n${tail}`,
    );
  }
  rmSync(lib, { recursive: true, force: true });
  renameSync(tmp, lib);
  const flags = ['-XX:+UseSerialGC', '-Xmx256m', '-XX:TieredStopAtLevel=1', '-Xlog:disable'];
  const archive = path.join(testServerCacheDir, 'classes.jsa');
  await dumpClassArchive(flags, lib, archive, log);
  // Serial GC, a capped heap and the C1 compiler only: the server is small and
  // short-lived, and up to five people share two cores. The class archive
  // (AppCDS) halves its start; a stale or missing one is ignored by the JVM.
  writeFileSync(
    wrapper,
    `#!/bin/sh\n# Written by test/support/temporal-test-server.ts. Args from the SDK: <port> [extraArgs...]\n` +
      `exec java ${flags.join(' ')} -XX:SharedArchiveFile='${archive}' -cp '${lib}/*' io.temporal.testserver.TestServer "$@"\n`,
  );
  chmodSync(wrapper, 0o755);
  writeFileSync(stamp, stampOf);
  log(`ready in ${((Date.now() - started) / 1000).toFixed(1)}s: ${wrapper}`);
  return wrapper;
}

/**
 * Starts the server once with -XX:ArchiveClassesAtExit: the JVM writes the
 * classes it loaded to `archive` when it exits on SIGTERM. Bounded, and
 * optional: on any trouble the wrapper runs without the archive.
 */
async function dumpClassArchive(flags: string[], lib: string, archive: string, log: (m: string) => void): Promise<void> {
  rmSync(archive, { force: true });
  const port = await freePort();
  const java = spawn('java', [...flags, `-XX:ArchiveClassesAtExit=${archive}`, '-cp', `${lib}/*`, 'io.temporal.testserver.TestServer', String(port)], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => java.on('exit', () => resolve()));
  const deadline = Date.now() + 60_000;
  let up = false;
  for (let i = 0; i < 600 && !up && Date.now() < deadline && java.exitCode === null; i++) {
    up = await new Promise<boolean>((resolve) => {
      const sock = net.connect(port, '127.0.0.1');
      sock.on('connect', () => (sock.destroy(), resolve(true)));
      sock.on('error', () => setTimeout(() => resolve(false), 100));
    });
  }
  java.kill(up ? 'SIGTERM' : 'SIGKILL');
  await exited;
  if (!up || !existsSync(archive)) log('could not write a class archive; the test server will start a little slower');
}
