import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { dropDatabase, migrate } from '../migrator';
import { withDatabase } from '../database-url';
import { createPrismaClient, type PrismaClient } from '../prisma-client';

export interface TestDatabase {
  url: string;
  prisma: PrismaClient;
  drop(): Promise<void>;
}

/** The server tests use: TEST_DATABASE_URL, else the local MariaDB as root. */
export function testServerUrl(): string {
  return process.env.TEST_DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/sendense_test';
}

export const MIGRATIONS_DIR = join(__dirname, '../../../../prisma/migrations');

/**
 * A fresh, migrated database for one test suite, never the developer's data:
 * its name is random and it is dropped afterwards.
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `sendense_t_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const url = withDatabase(testServerUrl(), name);
  await migrate(url, MIGRATIONS_DIR);
  const prisma = createPrismaClient(url);
  return {
    url,
    prisma,
    async drop() {
      await prisma.$disconnect();
      await dropDatabase(url);
    },
  };
}
