import type { PrismaClient } from '@sendense/db';
import type { BackupRepository, RestorePoint } from '@sendense/storage';

/** The backup_chains columns of a chain (oldest first), derived from the repository. */
export function chainRow(points: readonly RestorePoint[]) {
  return {
    fullBackupId: points[0]!.id,
    latestBackupId: points.at(-1)!.id,
    totalBackups: points.length,
    totalSizeBytes: BigInt(points.reduce((s, p) => s + p.allocatedBytes, 0)),
  };
}

/**
 * After the repository changed a disk's restore points (delete,
 * consolidation, retention), make the database say what the repository
 * says: rows of restore points that are gone are removed, survivors get their
 * new type/parent/size/checksum, and backup_chains follows the newest chain.
 * One mechanism for every operation, so the two never drift apart.
 */
export async function syncDisk(prisma: PrismaClient, repo: BackupRepository, repositoryId: string, vmContextId: string, diskIndex: number) {
  const points = await repo.list({ vmContextId, diskIndex });
  const byId = new Map(points.map((p) => [p.id, p]));
  const rows = await prisma.backupJob.findMany({ where: { vmContextId, diskId: diskIndex, repositoryId, status: 'completed' } });
  const gone = rows.filter((r) => !byId.has(r.id)).map((r) => r.id);
  const newest = [...points].sort((a, b) => a.createdAt.localeCompare(b.createdAt)).at(-1);
  const chain: RestorePoint[] = newest ? (await repo.chain(newest.id)).restorePoints : [];

  await prisma.$transaction(async (tx) => {
    for (const p of points) {
      if (!rows.some((r) => r.id === p.id)) continue;
      await tx.backupJob.update({
        where: { id: p.id },
        data: {
          backupType: p.type,
          parentBackupId: p.parentId,
          allocatedBytes: BigInt(p.allocatedBytes),
          virtualSizeBytes: BigInt(p.virtualSize),
          checksum: p.checksum,
          ...(p.lastVerification
            ? { verifiedAt: new Date(p.lastVerification.at), verifyStatus: p.lastVerification.ok ? 'ok' : 'failed' }
            : {}),
        },
      });
    }
    const key = { vmContextId_diskId: { vmContextId, diskId: diskIndex } };
    if (chain.length) {
      const data = chainRow(chain);
      await tx.backupChain.upsert({ where: key, create: { id: `chain-${chain[0]!.id}`.slice(0, 64), vmContextId, diskId: diskIndex, ...data }, update: data });
    } else {
      await tx.backupChain.deleteMany({ where: { vmContextId, diskId: diskIndex } });
    }
    if (gone.length) {
      await tx.restoreMount.deleteMany({ where: { backupId: { in: gone }, state: { in: ['failed'] } } });
      await tx.backupJob.deleteMany({ where: { id: { in: gone } } });
    }
    const lastChanged = chain.at(-1);
    if (lastChanged) {
      const disk = await tx.vmDisk.findUnique({ where: { vmContextId_diskIndex: { vmContextId, diskIndex } } });
      if (disk && disk.lastBackupId && gone.includes(disk.lastBackupId)) {
        // The base of the next incremental went away: point at what is left.
        await tx.vmDisk.update({ where: { id: disk.id }, data: { lastBackupId: lastChanged.id, lastChangeId: lastChanged.changeId } });
      }
    }
  });
  return { removed: gone, restorePoints: points.length };
}
