import type { PrismaClient } from '../prisma-client';

/**
 * Read side of the nbd_exports table for services other than the
 * nbd-exporter (which owns the rows: apps/nbd-exporter's export record
 * store). Maintenance asks which restore points instant-access exports serve,
 * so it never merges or deletes them while they are exported.
 */
export class NbdExportRepository {
  constructor(private readonly prisma: PrismaClient) {}

  /**
   * Restore points of one repository that an instant-access export serves
   * (on any node); with backupId, only that one (an empty list when it is not
   * exported).
   */
  async servedRestorePoints(repositoryId: string, backupId?: string): Promise<string[]> {
    const rows = await this.prisma.nbdExport.findMany({
      where: { restorePointId: backupId ?? { not: null } },
      select: { restorePointId: true },
    });
    const ids = [...new Set(rows.map((r) => r.restorePointId).filter((id): id is string => id !== null))];
    if (ids.length === 0) return [];
    // restore_point_id is not a foreign key (an export may outlive its row for a moment): filter by repository here.
    const inRepo = await this.prisma.backupJob.findMany({ where: { id: { in: ids }, repositoryId }, select: { id: true } });
    return inRepo.map((r) => r.id);
  }
}
