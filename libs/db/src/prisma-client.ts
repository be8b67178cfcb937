import { PrismaMariaDb } from '@prisma/adapter-mariadb';
import { PrismaClient } from './generated/client';
import { parseDatabaseUrl } from './database-url';

export type { PrismaClient };

/**
 * Prisma 7 talks to MariaDB/MySQL through the driver adapter (no native
 * query engine, works offline).
 */
export function createPrismaClient(databaseUrl: string): PrismaClient {
  const p = parseDatabaseUrl(databaseUrl);
  const adapter = new PrismaMariaDb({
    host: p.host,
    port: p.port,
    user: p.user,
    password: p.password,
    database: p.database,
    connectionLimit: 10,
    // Fail fast when the server is away (health checks, startup) instead of hanging.
    connectTimeout: 3000,
    acquireTimeout: 5000,
    // BIGINT columns come back as bigint; JSON stays JSON.
    bigIntAsNumber: false,
  });
  return new PrismaClient({ adapter });
}
