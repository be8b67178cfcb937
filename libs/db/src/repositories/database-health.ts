import type { PrismaClient } from '../prisma-client';

/** Whether the database answers (health checks), without handing out the client. */
export class DatabaseProbe {
  constructor(private readonly prisma: PrismaClient) {}

  /** Throws when the database does not answer a trivial query. */
  async ping(): Promise<void> {
    await this.prisma.$queryRawUnsafe('SELECT 1');
  }
}
