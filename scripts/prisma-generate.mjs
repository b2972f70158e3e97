#!/usr/bin/env node
// `prisma generate`, offline. The `prisma-client` generator needs no engine,
// but the CLI still resolves the native schema engine first and, when it is
// missing (npm 11 runs no Prisma install script), downloads it from
// binaries.prisma.sh. Pointing PRISMA_SCHEMA_ENGINE_BINARY at any existing
// executable skips that; generate never runs it.
//
// `--if-stale` generates only when the client is missing or was made from
// another schema.prisma (a hash of it is kept beside the client): after a
// `git pull` that brings a migration, `npm start`, `npm test` and
// `npm run bench` must not run a client that lacks the new columns.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'node_modules/prisma/build/index.js');
const schema = path.join(root, 'prisma/schema.prisma');
const client = path.join(root, 'core/generated/prisma/client.ts');
const stamp = path.join(root, 'core/generated/prisma/.schema-sha256');
const schemaHash = createHash('sha256').update(readFileSync(schema)).digest('hex');

if (process.argv.includes('--if-stale') && existsSync(client) && existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === schemaHash) process.exit(0);

function fail(message) {
  console.error(`prisma generate failed: ${message}`);
  process.exit(1);
}

if (!existsSync(cli)) fail(`${path.relative(root, cli)} is missing: run npm ci first`);
const engine = process.env.PRISMA_SCHEMA_ENGINE_BINARY;
if (engine && !existsSync(engine)) fail(`PRISMA_SCHEMA_ENGINE_BINARY=${engine} does not exist`);

const r = spawnSync(process.execPath, [cli, 'generate', '--schema', schema], {
  cwd: root,
  stdio: ['ignore', 'inherit', 'inherit'],
  env: {
    ...process.env,
    PRISMA_SCHEMA_ENGINE_BINARY: engine || process.execPath,
    // Prisma 7's CLI consults no other engine variable: the query engine is gone.
    PRISMA_HIDE_UPDATE_MESSAGE: '1',
    CHECKPOINT_DISABLE: '1',
  },
});
if (r.error) fail(r.error.message);
if (r.status !== 0) fail(`the prisma CLI exited with ${r.status ?? r.signal} (its output is above)`);
if (!existsSync(client)) fail(`${path.relative(root, client)} was not written: check the generator block of prisma/schema.prisma`);
writeFileSync(stamp, `${schemaHash}\n`);
