import { parseArgs } from 'node:util';
import { applyMigrations, diffMigration } from './migrate.ts';

// npm run db:migrate             → apply pending migrations (DATABASE_URL)
// npm run db:diff -- --name <x>  → write a migration from schema.prisma changes
// Without DATABASE_URL both use the embedded Postgres of `npm start`.
const DEFAULT_URL = `postgresql://postgres:postgres@127.0.0.1:${process.env.HANGAR_PG_PORT ?? 54329}/hangar`;
const USAGE = 'usage: migrate.cli.ts deploy | diff --name <change_name>';

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({ allowPositionals: true, options: { name: { type: 'string' }, verbose: { type: 'boolean', short: 'v' } } });
  const databaseUrl = process.env.DATABASE_URL ?? DEFAULT_URL;
  const log = values.verbose ? (m: string) => console.error(m) : undefined;
  switch (positionals[0]) {
    case 'deploy': {
      const { applied } = await applyMigrations(databaseUrl, { log });
      console.log(applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date');
      return 0;
    }
    case 'diff': {
      if (!values.name) throw new Error(`--name is required\n${USAGE}`);
      const folder = await diffMigration({ databaseUrl, name: values.name, log });
      console.log(folder ? `wrote ${folder}/migration.sql` : 'schema.prisma matches the migrations: nothing to write');
      return 0;
    }
    default:
      console.error(USAGE);
      return 2;
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`migration failed: ${(err as Error).message}`);
    process.exit(1);
  },
);
