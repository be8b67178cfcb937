import { defineConfig } from 'prisma/config';

// The URL is only needed by `prisma migrate`/`studio`; `prisma generate` works
// without it, so a placeholder keeps generate usable on a machine without a DB.
export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: { url: process.env.DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/sendense' },
});
