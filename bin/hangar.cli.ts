import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, parseConfig } from '../core/config.ts';
import { createKeyring, isEncrypted } from '../core/crypto.ts';
import { asSystem } from '../core/db.ts';
import { createCore } from '../core/hangar.ts';
import { resolveSecretKey } from '../core/runtime/secret-key.runtime.ts';
import { toPublicUser } from '../core/services/users.service.ts';

const USAGE = `hangar — Hangar's command line

  hangar admin create-user --username NAME [--email E] [--role admin|member] --password-stdin
  hangar admin create-breakglass --username NAME --password-stdin
  hangar admin create-token --username NAME --name TOKEN_NAME [--expires-in-days N]
  hangar secrets rotate --new-key-stdin

DATABASE_URL defaults to the embedded Postgres of \`npm start\` in development.`;

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) throw new Error('expected the value on standard input (e.g. echo "..." | hangar ...)');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      username: { type: 'string' },
      email: { type: 'string' },
      role: { type: 'string' },
      name: { type: 'string' },
      'expires-in-days': { type: 'string' },
      'password-stdin': { type: 'boolean' },
      'new-key-stdin': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const command = positionals.join(' ');
  if (values.help || !command) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  const config = parseConfig();
  const databaseUrl =
    config.databaseUrl ?? (config.mode !== 'production' ? `postgresql://postgres:postgres@127.0.0.1:${process.env.HANGAR_PG_PORT ?? 54329}/hangar` : undefined);
  const core = createCore(config, { databaseUrl });
  try {
    switch (command) {
      case 'admin create-user':
      case 'admin create-breakglass': {
        if (!values.username && !values.email) throw new Error('--username or --email is required');
        if (!values['password-stdin']) throw new Error('--password-stdin is required (passwords never go on the command line)');
        const breakglass = command.endsWith('breakglass');
        const role = breakglass ? 'admin' : (values.role ?? 'member');
        if (role !== 'admin' && role !== 'member') throw new Error('--role must be admin or member');
        const user = await core.users.create({
          username: values.username,
          email: values.email,
          password: await readStdin(),
          role,
          authSource: breakglass ? 'breakglass' : 'local',
        });
        console.log(JSON.stringify({ user: toPublicUser(user) }, null, 2));
        return 0;
      }
      case 'admin create-token': {
        if (!values.username || !values.name) throw new Error('--username and --name are required');
        const user = await core.db.user.findFirst({ where: { OR: [{ username: values.username.toLowerCase() }, { email: values.username.toLowerCase() }] } });
        if (!user) throw new Error(`no user ${values.username}`);
        const days = values['expires-in-days'] ? Number(values['expires-in-days']) : undefined;
        if (days !== undefined && (!Number.isInteger(days) || days < 1 || days > 3650)) throw new Error('--expires-in-days must be 1..3650');
        const t = await core.users.createToken(user.id, values.name, days);
        console.log(`token (shown once): ${t.token}`);
        return 0;
      }
      case 'secrets rotate': {
        if (!values['new-key-stdin']) throw new Error('--new-key-stdin is required');
        const newKey = await readStdin();
        const oldKey = resolveSecretKey(config);
        const ring = createKeyring(newKey, oldKey);
        // System work: row-level security must show every tenant's secrets to re-encrypt them.
        const counts = await asSystem(core.db, async (tx) => {
          let providers = 0, agents = 0, settings = 0;
          for (const p of await tx.llmProvider.findMany({ where: { apiKey: { not: null } } })) {
            if (!isEncrypted(p.apiKey)) continue;
            await tx.llmProvider.update({ where: { id: p.id }, data: { apiKey: ring.encrypt(ring.decrypt(p.apiKey)) } });
            providers++;
          }
          for (const a of await tx.agent.findMany()) {
            await tx.agent.update({ where: { id: a.id }, data: { gatewayToken: ring.encrypt(ring.decrypt(a.gatewayToken)) } });
            agents++;
          }
          for (const s of await tx.systemConfig.findMany({ where: { encrypted: true } })) {
            await tx.systemConfig.update({ where: { key: s.key }, data: { value: ring.encrypt(ring.decrypt(s.value)) } });
            settings++;
          }
          return { providers, agents, settings };
        }, { timeoutMs: 120_000 });
        if (!config.secretKey) {
          writeFileSync(path.resolve(config.dataDir, 'secret.key'), `${newKey}\n`, { mode: 0o600 });
          console.log(`re-encrypted ${JSON.stringify(counts)}; the new key is in ${config.dataDir}/secret.key. Restart Hangar.`);
        } else {
          console.log(`re-encrypted ${JSON.stringify(counts)}. Set HANGAR_SECRET_KEY to the new key and restart every Hangar process.`);
        }
        return 0;
      }
      default:
        console.error(`unknown command: ${command}\n\n${USAGE}`);
        return 2;
    }
  } finally {
    await core.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof ConfigError ? err.message : `error: ${(err as Error).message}`);
    process.exit(1);
  },
);
