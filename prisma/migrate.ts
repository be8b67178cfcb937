/**
 * `npm run db:migrate`: bring the database in DATABASE_URL up to date.
 * Uses `prisma migrate deploy` when Prisma's native schema engine is present
 * (PRISMA_SCHEMA_ENGINE_BINARY set to a real engine), else applies the same
 * migration folders itself and records them in `_prisma_migrations`.
 */
import { join } from 'node:path';
import { migrate } from '@sendense/db';
import { run } from '@sendense/process';
import { existsSync, statSync } from 'node:fs';

async function main(): Promise<void> {
  const url = process.env.DATABASE_URL;
  if (!url) {
    process.stderr.write('DATABASE_URL is not set (e.g. mysql://root@127.0.0.1:3306/sendense)\n');
    process.exit(2);
  }
  const engine = process.env.PRISMA_SCHEMA_ENGINE_BINARY;
  if (engine && existsSync(engine) && statSync(engine).size > 1024 * 1024) {
    const r = await run('npx', ['prisma', 'migrate', 'deploy'], { cwd: join(__dirname, '..') });
    process.stdout.write(r.stdout);
    return;
  }
  const result = await migrate(url, join(__dirname, 'migrations'), (l) => process.stdout.write(`${l}\n`));
  process.stdout.write(`database up to date: ${result.applied.length} applied, ${result.alreadyApplied.length} already applied\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`db:migrate failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
