import type { PrismaClient } from '../prisma-client';

/** What the gateway's /metrics reads from the database at each scrape (a few grouped counts). */
export class MetricsSourceRepository {
  constructor(private readonly prisma: PrismaClient) {}

  /** Disk backup jobs (backup_jobs rows) by status and type. */
  async backupJobCounts(): Promise<{ status: string; type: string; count: number }[]> {
    const rows = await this.prisma.backupJob.groupBy({ by: ['status', 'backupType'], _count: { _all: true } });
    return rows.map((r) => ({ status: r.status, type: r.backupType, count: r._count._all }));
  }

  /** Restore mounts by state. */
  async mountCounts(): Promise<{ state: string; count: number }[]> {
    const rows = await this.prisma.restoreMount.groupBy({ by: ['state'], _count: { _all: true } });
    return rows.map((r) => ({ state: r.state, count: r._count._all }));
  }

  /** Repository space as last recorded by its node's worker. */
  async repositorySpace(): Promise<{ name: string; node: string; totalBytes: number; freeBytes: number }[]> {
    const rows = await this.prisma.backupRepository.findMany({ select: { name: true, storageNode: true, totalSizeBytes: true, availableSizeBytes: true } });
    return rows.map((r) => ({ name: r.name, node: r.storageNode, totalBytes: Number(r.totalSizeBytes), freeBytes: Number(r.availableSizeBytes) }));
  }

  /** Policies by paused/active. */
  async policyCounts(): Promise<{ paused: boolean; count: number }[]> {
    const rows = await this.prisma.backupPolicy.groupBy({ by: ['paused'], _count: { _all: true } });
    return rows.map((r) => ({ paused: r.paused, count: r._count._all }));
  }
}
