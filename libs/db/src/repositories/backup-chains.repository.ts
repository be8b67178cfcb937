import type { PrismaClient } from '../prisma-client';
import type { BackupChain, BackupType, Prisma } from '../generated/client';

/**
 * What the database needs to know of a restore point in the repository
 * (a structural subset of `@sendense/storage`'s RestorePoint, so this library
 * does not depend on storage).
 */
export interface ChainPoint {
  id: string;
  type: BackupType;
  parentId: string | null;
  changeId: string | null;
  allocatedBytes: number;
  virtualSize: number;
  checksum: string | null;
  createdAt: string;
  lastVerification: { at: string; ok: boolean } | null;
  /** File name of the image in its disk directory (consolidation renames a survivor incr-* to full-*). */
  imageName?: string;
}

/** The repository's view of a disk's restore points: the source of truth syncDisk follows. */
export interface ChainSource {
  list(query: { vmContextId: string; diskIndex: number }): Promise<ChainPoint[]>;
  /** Oldest first chain up to `id`. */
  chain(id: string): Promise<{ restorePoints: ChainPoint[] }>;
  /** What backup_jobs.repository_path holds for an image (the repository's key of it). */
  imageKey?(record: { vmContextId: string; diskIndex: number; imageName: string }): string;
}

/** The backup_chains columns of a chain (oldest first), derived from the repository. */
export function chainRow(points: readonly Pick<ChainPoint, 'id' | 'allocatedBytes'>[]) {
  const first = points[0];
  const last = points.at(-1);
  if (!first || !last) throw new Error('a backup chain has at least one restore point');
  return {
    fullBackupId: first.id,
    latestBackupId: last.id,
    totalBackups: points.length,
    totalSizeBytes: BigInt(points.reduce((s, p) => s + p.allocatedBytes, 0)),
  };
}

/** A restore point the repository committed, to be recorded with its disk and chain at once. */
export interface CommittedRestorePoint {
  backupId: string;
  vmContextId: string;
  diskIndex: number;
  /** vm_disks.id of the disk. */
  vmDiskId: string;
  changeId: string;
  bytesTransferred: number;
  bytesSkippedZero: number;
  bytesTotal: number;
  allocatedBytes: number;
  virtualSize: number;
  checksum: string | null;
  /** Set when the CBT audit found the restore point suspect (the next backup of the disk is then full). */
  suspectReason?: string | null;
  /** The CBT audit's findings, when one ran. */
  cbtAudit?: Prisma.InputJsonObject;
  /** What the disk looks like now (it may have grown or been renamed). */
  disk: { capacityBytes: number; label: string | null; fileName: string | null };
  /** The repository's chain of this restore point, oldest first. */
  chain: readonly Pick<ChainPoint, 'id' | 'allocatedBytes'>[];
}

type Tx = Prisma.TransactionClient;

function chainKey(vmContextId: string, diskId: number) {
  return { vmContextId_diskId: { vmContextId, diskId } };
}

async function upsertChain(tx: Tx, vmContextId: string, diskId: number, points: readonly Pick<ChainPoint, 'id' | 'allocatedBytes'>[]) {
  const row = chainRow(points);
  await tx.backupChain.upsert({
    where: chainKey(vmContextId, diskId),
    create: { id: `chain-${row.fullBackupId}`.slice(0, 64), vmContextId, diskId, ...row },
    update: row,
  });
}

/**
 * The backup_chains table, and the one way rows follow the repository:
 * `recordCommit` after a backup, `syncDisk` after anything else changed a
 * disk's restore points (delete, consolidation, retention, verification).
 */
export class BackupChainRepository {
  constructor(private readonly prisma: PrismaClient) {}

  find(vmContextId: string, diskId: number): Promise<BackupChain | null> {
    return this.prisma.backupChain.findUnique({ where: chainKey(vmContextId, diskId) });
  }

  listForVm(vmContextId: string, diskId?: number): Promise<BackupChain[]> {
    return this.prisma.backupChain.findMany({ where: { vmContextId, ...(diskId !== undefined ? { diskId } : {}) }, orderBy: { diskId: 'asc' } });
  }

  /**
   * One transaction: the row completed, the disk pointing at it (the base of
   * the next incremental), the chain row derived from the repository's chain
   * (upserted: retention may have removed it while the backup ran).
   */
  async recordCommit(c: CommittedRestorePoint): Promise<void> {
    await this.prisma.$transaction(async (tx) => {
      await tx.backupJob.update({
        where: { id: c.backupId },
        data: {
          status: 'completed',
          completedAt: new Date(),
          changeId: c.changeId,
          bytesTransferred: BigInt(c.bytesTransferred),
          allocatedBytes: BigInt(c.allocatedBytes),
          virtualSizeBytes: BigInt(c.virtualSize),
          checksum: c.checksum,
          ...(c.suspectReason !== undefined ? { suspectReason: c.suspectReason } : {}),
          ...(c.cbtAudit ? { cbtAudit: c.cbtAudit } : {}),
          progress: { phase: 'done', bytesDone: c.bytesTransferred, bytesTotal: c.bytesTotal, bytesSkippedZero: c.bytesSkippedZero },
        },
      });
      await tx.vmDisk.update({
        where: { id: c.vmDiskId },
        data: {
          lastChangeId: c.changeId,
          lastBackupId: c.backupId,
          capacityBytes: BigInt(c.disk.capacityBytes),
          label: c.disk.label,
          backingFile: c.disk.fileName,
        },
      });
      await upsertChain(tx, c.vmContextId, c.diskIndex, c.chain);
    });
  }

  /**
   * After the repository changed a disk's restore points, make the database
   * say what the repository says: rows of restore points that are gone are
   * removed, survivors get their new type/parent/size/checksum, and
   * backup_chains follows the newest chain. One mechanism for every
   * operation, so the two never drift apart.
   */
  async syncDisk(source: ChainSource, repositoryId: string, vmContextId: string, diskIndex: number): Promise<{ removed: string[]; restorePoints: number }> {
    const points = await source.list({ vmContextId, diskIndex });
    const byId = new Map(points.map((p) => [p.id, p]));
    const rows = await this.prisma.backupJob.findMany({ where: { vmContextId, diskId: diskIndex, repositoryId, status: 'completed' }, select: { id: true } });
    const gone = rows.filter((r) => !byId.has(r.id)).map((r) => r.id);
    const newest = [...points].sort((a, b) => a.createdAt.localeCompare(b.createdAt)).at(-1);
    const chain = newest ? (await source.chain(newest.id)).restorePoints : [];
    const known = new Set(rows.map((r) => r.id));
    await this.prisma.$transaction(async (tx) => {
      for (const p of points) {
        if (!known.has(p.id)) continue;
        // The image may have been renamed (a merged survivor becomes full-*): the row must follow, or mounts open a file that is gone.
        const key = p.imageName && source.imageKey ? source.imageKey({ vmContextId, diskIndex, imageName: p.imageName }) : undefined;
        await updateFromRepository(tx, p, key);
      }
      if (chain.length) await upsertChain(tx, vmContextId, diskIndex, chain);
      else await tx.backupChain.deleteMany({ where: { vmContextId, diskId: diskIndex } });
      if (gone.length) {
        await tx.restoreMount.deleteMany({ where: { backupId: { in: gone }, state: { in: ['failed'] } } });
        await tx.backupJob.deleteMany({ where: { id: { in: gone } } });
      }
      const last = chain.at(-1);
      if (last) await repointDisk(tx, vmContextId, diskIndex, gone, last);
    });
    return { removed: gone, restorePoints: points.length };
  }
}

async function updateFromRepository(tx: Tx, p: ChainPoint, repositoryPath: string | undefined): Promise<void> {
  await tx.backupJob.update({
    where: { id: p.id },
    data: {
      ...(repositoryPath ? { repositoryPath } : {}),
      backupType: p.type,
      parentBackupId: p.parentId,
      allocatedBytes: BigInt(p.allocatedBytes),
      virtualSizeBytes: BigInt(p.virtualSize),
      checksum: p.checksum,
      ...(p.lastVerification ? { verifiedAt: new Date(p.lastVerification.at), verifyStatus: p.lastVerification.ok ? 'ok' : 'failed' } : {}),
    },
  });
}

/** The base of the next incremental went away: point the disk at what is left. */
async function repointDisk(tx: Tx, vmContextId: string, diskIndex: number, gone: readonly string[], last: ChainPoint): Promise<void> {
  const disk = await tx.vmDisk.findUnique({ where: { vmContextId_diskIndex: { vmContextId, diskIndex } } });
  if (disk?.lastBackupId && gone.includes(disk.lastBackupId)) {
    await tx.vmDisk.update({ where: { id: disk.id }, data: { lastBackupId: last.id, lastChangeId: last.changeId } });
  }
}
