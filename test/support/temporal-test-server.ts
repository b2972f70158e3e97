import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

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
export function ensureTemporalTestServer(log: (m: string) => void = (m) => console.log(`[test-server] ${m}`)): string {
  const given = process.env.TEMPORAL_TEST_SERVER_PATH;
  if (given) {
    if (!existsSync(given)) throw new Error(`TEMPORAL_TEST_SERVER_PATH=${given} does not exist`);
    return given;
  }
  const pomHash = createHash('sha256').update(readFileSync(pom)).digest('hex');
  const stamp = path.join(testServerCacheDir, 'stamp');
  const wrapper = path.join(testServerCacheDir, 'temporal-test-server');
  if (existsSync(wrapper) && existsSync(stamp) && readFileSync(stamp, 'utf8') === pomHash) return wrapper;

  const java = run('java', ['-version']);
  if (java.missing || java.status !== 0) {
    throw new Error('The workflow tests need Java 11+ for Temporal\'s test server: apt-get install default-jre-headless');
  }
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
  // Serial GC and a capped heap: the server is small, and up to five people share two cores.
  writeFileSync(
    wrapper,
    `#!/bin/sh\n# Written by test/support/temporal-test-server.ts. Args from the SDK: <port> [extraArgs...]\n` +
      `exec java -XX:+UseSerialGC -Xmx256m -cp '${lib}/*' io.temporal.testserver.TestServer "$@"\n`,
  );
  chmodSync(wrapper, 0o755);
  writeFileSync(stamp, pomHash);
  log(`ready in ${((Date.now() - started) / 1000).toFixed(1)}s: ${wrapper}`);
  return wrapper;
}
