// What the chosen stack holds with no Hangar code in it, for the floor bench
// (test/bench/floor.bench.ts). Plain JavaScript, so no TypeScript loader adds
// to what is measured; it runs as production runs (MALLOC_ARENA_MAX=2, the
// compiled Prisma client in dist/).
//   api:    fastify listening, a Temporal client connected, the Prisma client
//           (adapter-pg) after a raw and a model query
//   worker: two Temporal workers on one connection (workflows + local
//           activities on one queue, the host's activities on another), as
//           Hangar's worker has, with a prebuilt bundle
// Prints "ready" when done; the bench reads its RSS from /proc from outside.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [mode, ...rest] = process.argv.slice(2);
const opts = Object.fromEntries(rest.map((a) => a.split(/=(.*)/s).slice(0, 2)));
const repo = path.resolve(import.meta.dirname, '../../..');
const require = createRequire(path.join(repo, 'package.json'));
const noop = async () => undefined;

if (mode === 'api') {
  const Fastify = require('fastify');
  const app = Fastify();
  app.get('/', async () => ({ ok: true }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { Client, Connection } = require('@temporalio/client');
  const client = new Client({ connection: await Connection.connect({ address: opts.temporal }) });
  await client.workflowService.getSystemInfo({});
  const { PrismaClient } = await import(pathToFileURL(path.join(repo, 'dist/core/generated/prisma/client.js')).href);
  const { PrismaPg } = require('@prisma/adapter-pg');
  // The URL carries a password: from the environment, not the command line.
  const db = new PrismaClient({ adapter: new PrismaPg({ connectionString: process.env.DATABASE_URL }) });
  await db.$queryRawUnsafe('select 1');
  // Row-level security may hide every row; the query still loads the query compiler.
  await db.user.findFirst().catch(noop);
} else if (mode === 'worker') {
  const { DefaultLogger, NativeConnection, Runtime, Worker } = require('@temporalio/worker');
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const connection = await NativeConnection.connect({ address: opts.temporal });
  const workers = [
    await Worker.create({
      connection,
      taskQueue: opts.queue,
      workflowBundle: { code: readFileSync(opts.bundle, 'utf8') },
      maxCachedWorkflows: Number(opts.cache),
      activities: { noop },
    }),
    await Worker.create({ connection, taskQueue: opts.hostQueue, activities: { noop } }),
  ];
  // A worker that fails after "ready" ends the process, so the bench's reading of its memory fails loudly.
  Promise.all(workers.map((w) => w.run())).catch((err) => {
    console.error(err);
    process.exit(1);
  });
  process.on('SIGTERM', () => workers.forEach((w) => w.shutdown()));
} else {
  throw new Error(`mode: api | worker, not ${mode}`);
}
console.log('ready');
