import type { PrismaClient } from '../prisma-client';
import type { BackupJob, BackupRepository, BackupStatus, BackupType, Prisma } from '../generated/client';

/** A restore point row as the worker creates it, before any data is written. */
export interface NewBackupJob {
  id: string;
  vmContextId: string;
  vmName: string;
  runId: string;
  diskId: number;
  backupType: BackupType;
  requestedType: BackupType;
  fallbackReason: string | null;
  repositoryId: string;
  repositoryType: string;
  /** Repository-relative location of the image (as storage reported it). */
  repositoryPath: string;
  parentBackupId: string | null;
  previousChangeId: string | null;
  totalBytes: number;
  virtualSizeBytes: number;
  storageNode: string;
  queueJobId: string;
}

export interface BackupJobFilter {
  vmContextId?: string;
  status?: BackupStatus;
}

export type BackupJobWithRepository = BackupJob & { repository: BackupRepository | null };

/** Error messages are Text columns; a runaway stderr must not fail the update. */
const MAX_MESSAGE = 60_000;

/**
 * The backup_jobs table: one row per restore point of one disk (a VM backup
 * of N disks is N rows sharing a run id). Used by the worker (create, progress,
 * end states) and the gateway (listing, dependents, chains).
 */
export class BackupJobRepository {
  constructor(private readonly prisma: PrismaClient) {}

  find(id: string): Promise<BackupJob | null> {
    return this.prisma.backupJob.findUnique({ where: { id } });
  }

  /** The row and the repository row it lives in (null when the repository was removed). */
  findWithRepository(id: string): Promise<BackupJobWithRepository | null> {
    return this.prisma.backupJob.findUnique({ where: { id }, include: { repository: true } });
  }

  /** Newest first, disks of one run in order. */
  async page(filter: BackupJobFilter, page: { limit: number; offset: number }): Promise<{ rows: BackupJob[]; total: number }> {
    const where = this.where(filter);
    const [rows, total] = await Promise.all([
      this.prisma.backupJob.findMany({ where, orderBy: [{ createdAt: 'desc' }, { diskId: 'asc' }], take: page.limit, skip: page.offset }),
      this.prisma.backupJob.count({ where }),
    ]);
    return { rows, total };
  }

  /** The rows of one VM backup, by disk. */
  listByRun(runId: string): Promise<BackupJob[]> {
    return this.prisma.backupJob.findMany({ where: { runId }, orderBy: { diskId: 'asc' } });
  }

  /** Rows in the order of `ids` (ids without a row are left out). */
  async listByIds(ids: readonly string[]): Promise<BackupJob[]> {
    const rows = await this.prisma.backupJob.findMany({ where: { id: { in: [...ids] } } });
    const byId = new Map(rows.map((r) => [r.id, r]));
    return ids.flatMap((id) => byId.get(id) ?? []);
  }

  /** Completed restore points built directly on `id` (failed attempts keep a parent id but have no image). */
  async completedDependents(id: string): Promise<string[]> {
    const rows = await this.prisma.backupJob.findMany({ where: { parentBackupId: id, status: 'completed' }, select: { id: true } });
    return rows.map((r) => r.id);
  }

  /** Oldest first: the full, then each restore point up to `row`, following parent ids. */
  async chainIds(row: Pick<BackupJob, 'id' | 'parentBackupId'>): Promise<string[]> {
    const ids = [row.id];
    let parent = row.parentBackupId;
    for (let i = 0; parent && i < 10_000 && !ids.includes(parent); i++) {
      ids.unshift(parent);
      const p = await this.prisma.backupJob.findUnique({ where: { id: parent }, select: { parentBackupId: true } });
      parent = p?.parentBackupId ?? null;
    }
    return ids;
  }

  /** Rows still marked running (of one run, or of one storage node), with their repository. */
  running(where: { runId?: string; storageNode?: string }): Promise<BackupJobWithRepository[]> {
    return this.prisma.backupJob.findMany({ where: { status: 'running', ...where }, include: { repository: true } });
  }

  /** Every (VM, disk) with a row in a repository. */
  disksIn(repositoryId: string, vmContextId?: string): Promise<{ vmContextId: string; diskId: number }[]> {
    return this.prisma.backupJob.findMany({
      where: { repositoryId, ...(vmContextId ? { vmContextId } : {}) },
      select: { vmContextId: true, diskId: true },
      distinct: ['vmContextId', 'diskId'],
    });
  }

  /** Bytes the completed restore points of a repository occupy. */
  async usedBytes(repositoryId: string): Promise<bigint> {
    const used = await this.prisma.backupJob.aggregate({ where: { repositoryId, status: 'completed' }, _sum: { allocatedBytes: true } });
    return used._sum.allocatedBytes ?? 0n;
  }

  /** A new row in state running, before the restore point has any data. */
  create(j: NewBackupJob): Promise<BackupJob> {
    return this.prisma.backupJob.create({
      data: {
        ...j,
        totalBytes: BigInt(j.totalBytes),
        virtualSizeBytes: BigInt(j.virtualSizeBytes),
        status: 'running',
        compressionEnabled: false,
        startedAt: new Date(),
      },
    });
  }

  async saveProgress(id: string, progress: Prisma.InputJsonObject): Promise<void> {
    await this.prisma.backupJob.update({ where: { id }, data: { progress } });
  }

  /** The run ended without this restore point; `message` says why. */
  async markEnded(id: string, status: Extract<BackupStatus, 'failed' | 'cancelled'>, message: string): Promise<void> {
    await this.prisma.backupJob.update({ where: { id }, data: { status, errorMessage: message.slice(0, MAX_MESSAGE), completedAt: new Date() } });
  }

  async recordVerification(id: string, at: Date, ok: boolean): Promise<void> {
    await this.prisma.backupJob.update({ where: { id }, data: { verifiedAt: at, verifyStatus: ok ? 'ok' : 'failed' } });
  }

  /** Removes the row of a restore point that never completed (it has no image); a completed row stays. */
  async deleteUnlessCompleted(id: string): Promise<number> {
    const r = await this.prisma.backupJob.deleteMany({ where: { id, status: { not: 'completed' } } });
    return r.count;
  }

  private where(f: BackupJobFilter): Prisma.BackupJobWhereInput {
    return { ...(f.vmContextId ? { vmContextId: f.vmContextId } : {}), ...(f.status ? { status: f.status } : {}) };
  }
}
