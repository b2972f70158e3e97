import { Client, Connection } from '@temporalio/client';
import Docker from 'dockerode';
import { parseConfig } from '../core/config.ts';
import { checkDatabaseRole } from '../core/db.ts';
import { createCore } from '../core/hangar.ts';
import { buildApp } from './app.ts';

// API process entry. Connects lazily to Temporal so chat to running agents
// keeps working while the workflow service is down.
const config = parseConfig();
const core = createCore(config);
await checkDatabaseRole(core.db, config.mode, (m) => console.warn(`[api] WARNING: ${m}`));
const connection = Connection.lazy({ address: config.temporalAddress ?? '127.0.0.1:7233' });
const temporal = new Client({ connection, namespace: config.temporalNamespace });
const docker = new Docker();
const app = await buildApp({
  core,
  temporal,
  // Credentials never reach the log, whatever a serializer is later taught to print.
  logger: { level: config.logLevel, redact: ['req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]'] },
  readiness: { docker: () => docker.ping() },
});
await app.listen({ host: config.host, port: config.port });

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, async () => {
    await app.close();
    await connection.close().catch(() => undefined);
    await core.close();
    process.exit(0);
  });
}
