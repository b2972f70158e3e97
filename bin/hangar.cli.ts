import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, parseConfig } from '../core/config.ts';
import { createKeyring } from '../core/crypto.ts';
import { createCore } from '../core/hangar.ts';
import { resolveSecretKey } from '../core/runtime/secret-key.runtime.ts';
import { reencryptSecrets } from '../core/services/secret-rotation.service.ts';
import { toPublicUser } from '../core/services/users.service.ts';

const USAGE = `hangar — Hangar's command line

  hangar admin create-user --username NAME [--email E] [--role admin|member] --password-stdin
  hangar admin create-breakglass --username NAME --password-stdin
  hangar admin reset-password [--username NAME] --password-stdin
                                    a new password for the breakglass admin (or NAME's local account); ends their sessions
  hangar setup-code                 the one-time code that claims a new instance (until onboarding completes)
  hangar admin create-token --username NAME --name TOKEN_NAME [--expires-in-days N]
  hangar secrets rotate --new-key-stdin
  hangar federation identity        this instance's federation identity (give peers its fingerprint)
  hangar federation rotate-key [--grace-hours N]
                                    a new federation key, endorsed by the old one in every signed
                                    message; peers accept the old key for N hours
                                    (HANGAR_FEDERATION_KEY_GRACE_HOURS)

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
      'grace-hours': { type: 'string' },
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
      case 'setup-code': {
        const code = await core.onboarding.setupCode();
        if (!code) {
          console.log('This instance is claimed already (a breakglass admin exists or onboarding is complete): no setup code.');
          return 0;
        }
        console.log(code);
        return 0;
      }
      case 'admin create-breakglass': {
        if (!values.username) throw new Error('--username is required');
        if (!values['password-stdin']) throw new Error('--password-stdin is required (passwords never go on the command line)');
        const password = await readStdin();
        if (password.length < 12) throw new Error('the password must be at least 12 characters');
        // The same service as the wizard's: one breakglass, and the wizard learns of it.
        const user = await core.onboarding.claimFromConsole({ username: values.username, password });
        console.log(JSON.stringify({ user: toPublicUser(user) }, null, 2));
        return 0;
      }
      case 'admin reset-password': {
        if (!values['password-stdin']) throw new Error('--password-stdin is required (passwords never go on the command line)');
        // The console is the console: the breakglass admin's way back in when nobody else can sign in.
        const user = values.username ? await core.users.findByLogin(values.username) : await core.breakglass.existing();
        if (!user) throw new Error(values.username ? `no user ${values.username}` : 'there is no breakglass admin yet (hangar admin create-breakglass)');
        if (user.authSource !== 'local' && user.authSource !== 'breakglass') throw new Error(`${values.username} signs in through ${user.authSource}: their password is not Hangar's`);
        await core.users.setPassword(user.id, await readStdin());
        await core.audit.record({ actorId: null, action: 'user.password_reset_cli', target: `user:${user.id}` });
        console.log(`password of ${user.username ?? user.email} reset; their sessions ended.${user.status !== 'active' ? ` Note: the account is ${user.status}.` : ''}`);
        return 0;
      }
      case 'admin create-user': {
        if (!values.username && !values.email) throw new Error('--username or --email is required');
        if (!values['password-stdin']) throw new Error('--password-stdin is required (passwords never go on the command line)');
        const role = values.role ?? 'member';
        if (role !== 'admin' && role !== 'member') throw new Error('--role must be admin or member');
        const user = await core.users.create({ username: values.username, email: values.email, password: await readStdin(), role, authSource: 'local' });
        console.log(JSON.stringify({ user: toPublicUser(user) }, null, 2));
        return 0;
      }
      case 'admin create-token': {
        if (!values.username || !values.name) throw new Error('--username and --name are required');
        const user = await core.users.findByLogin(values.username);
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
        const counts = await reencryptSecrets(core.db, createKeyring(newKey, oldKey));
        if (!config.secretKey) {
          writeFileSync(path.resolve(config.dataDir, 'secret.key'), `${newKey}\n`, { mode: 0o600 });
          console.log(`re-encrypted ${JSON.stringify(counts)}; the new key is in ${config.dataDir}/secret.key. Restart Hangar.`);
        } else {
          console.log(`re-encrypted ${JSON.stringify(counts)}. Set HANGAR_SECRET_KEY to the new key and restart every Hangar process.`);
        }
        return 0;
      }
      case 'federation identity': {
        console.log(JSON.stringify(await core.federationIdentity.identity(), null, 2));
        return 0;
      }
      case 'federation rotate-key': {
        const hours = values['grace-hours'] ? Number(values['grace-hours']) : undefined;
        if (hours !== undefined && (!Number.isInteger(hours) || hours < 1 || hours > 720)) throw new Error('--grace-hours must be 1..720');
        const r = await core.federationIdentity.rotate(hours);
        console.log(`federation key rotated: ${r.previous.fingerprint} -> ${r.current.fingerprint}; peers accept the old key until ${r.acceptedUntil}.`);
        console.log('Every signed message carries the new key endorsed by the old one until then: a peer that pinned the old key learns the new one from the first command or answer it gets. Running processes pick the key up within seconds.');
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
