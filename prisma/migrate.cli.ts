import { parseArgs } from 'node:util';
import { applyMigrations, diffMigration } from './migrate.ts';

// npm run db:migrate             → apply pending migrations (DATABASE_URL)
// npm run db:diff -- --name <x>  → write a migration from schema.prisma changes
const DEFAULT_URL = `postgresql://postgres:postgres@127.0.0.1:${process.env.HANGAR_PG_PORT ?? 54329}/hangar`;

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({ allowPositionals: true, options: { name: { type: 'string' } } });
  const databaseUrl = process.env.DATABASE_URL ?? DEFAULT_URL;
  switch (positionals[0]) {
    case 'deploy': {
      const { applied } = await applyMigrations(databaseUrl, { log: (m) => console.log(m) });
      console.log(applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date');
      return 0;
    }
    case 'diff': {
      if (!values.name) throw new Error('usage: npm run db:diff -- --name <change_name>');
      const folder = await diffMigration({ databaseUrl, name: values.name });
      console.log(folder ? `wrote ${folder}/migration.sql` : 'schema.prisma matches the migrations: nothing to write');
      return 0;
    }
    default:
      console.error('usage: migrate.cli.ts deploy | diff --name <x>');
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
