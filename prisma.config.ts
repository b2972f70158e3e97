import { defineConfig } from 'prisma/config';

// Prisma 7 reads the datasource URL from here; `generate` needs none.
export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: { url: process.env.DATABASE_URL ?? 'postgresql://unused@127.0.0.1/unused' },
});
