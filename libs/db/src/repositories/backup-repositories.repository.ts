import { randomUUID } from 'node:crypto';
import type { PrismaClient } from '../prisma-client';
import type { BackupRepository, Prisma, RepositoryType } from '../generated/client';

export interface NewBackupRepository {
  name: string;
  repositoryType: RepositoryType;
  /** Backend settings, e.g. { path } for local. */
  config: Record<string, unknown>;
  storageNode: string;
}

/** The backup_repositories table (where restore points are kept; libs/storage reads and writes them). */
export class BackupRepositoryRepository {
  constructor(private readonly prisma: PrismaClient) {}

  find(id: string): Promise<BackupRepository | null> {
    return this.prisma.backupRepository.findUnique({ where: { id } });
  }

  findByName(name: string): Promise<BackupRepository | null> {
    return this.prisma.backupRepository.findUnique({ where: { name } });
  }

  /** By id, else by name. */
  async findByIdOrName(idOrName: string): Promise<BackupRepository | null> {
    return (await this.find(idOrName)) ?? (await this.findByName(idOrName));
  }

  /** By name. */
  list(opts: { enabledOnly?: boolean } = {}): Promise<BackupRepository[]> {
    return this.prisma.backupRepository.findMany({ where: opts.enabledOnly ? { enabled: true } : {}, orderBy: { name: 'asc' } });
  }

  /** The storage nodes that hold at least one repository. */
  async storageNodes(): Promise<string[]> {
    const rows = await this.prisma.backupRepository.findMany({ select: { storageNode: true }, distinct: ['storageNode'] });
    return rows.map((r) => r.storageNode);
  }

  create(r: NewBackupRepository): Promise<BackupRepository> {
    return this.prisma.backupRepository.create({ data: { id: randomUUID(), ...r, config: r.config as Prisma.InputJsonObject } });
  }

  /** Removes the row (the caller checks it holds no backups; a retention policy referencing it makes this fail). */
  async delete(id: string): Promise<void> {
    await this.prisma.backupRepository.delete({ where: { id } });
  }

  /** Backups (rows of backup_jobs, any status) kept in it. */
  countBackups(id: string): Promise<number> {
    return this.prisma.backupJob.count({ where: { repositoryId: id } });
  }

  /** Record the size and free space measured on its storage node. */
  recordSpace(id: string, space: { totalBytes: number; availableBytes: number }): Promise<BackupRepository> {
    return this.prisma.backupRepository.update({
      where: { id },
      data: { totalSizeBytes: BigInt(space.totalBytes), availableSizeBytes: BigInt(space.availableBytes) },
    });
  }
}
