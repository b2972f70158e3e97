import { existsSync } from 'node:fs';
import Docker from 'dockerode';
import { parseConfig } from '../core/config.ts';
import { checkDatabaseRole } from '../core/db.ts';
import { createCore } from '../core/hangar.ts';
import { buildApp } from './app.ts';

// API process entry. Temporal is reached through core's port, which connects
// lazily, so chat to running agents keeps working while it is down.
const config = parseConfig();
const core = createCore(config);
await checkDatabaseRole(core.db, config.mode, (m) => console.warn(`[api] WARNING: ${m}`));
// The federation identity is made at first boot, by whichever process gets there first.
await core.federationIdentity.ensure();
// Docker is a readiness check only where the API has an engine: in the
// production image only the docker-worker holds the socket, and the API then
// answers ready on Postgres and Temporal alone.
const docker = process.env.DOCKER_HOST || existsSync('/var/run/docker.sock') ? new Docker() : null;
const app = await buildApp({
  core,
  // Credentials never reach the log, whatever a serializer is later taught to print.
  logger: { level: config.logLevel, redact: ['req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]'] },
  readiness: { docker: docker ? () => docker.ping() : null },
});
await app.listen({ host: config.host, port: config.port });

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, async () => {
    await app.close();
    await core.close();
    process.exit(0);
  });
}
