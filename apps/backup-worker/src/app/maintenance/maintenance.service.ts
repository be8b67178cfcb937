import type {
  ApplyRetentionJobData,
  ConsolidateChainJobData,
  DeleteRestorePointJobData,
  VerifyRestorePointJobData,
} from '@sendense/contracts';
import { BackupChainRepository, type PrismaClient } from '@sendense/db';
import { applyRetention, ChainBroken, exposesLocalFiles, releaseAll, RestorePointNotFound, StorageError, type BackupRepository, type LockHandle, type RetentionPolicy } from '@sendense/storage';
import { PermanentError } from '../common/errors';
import type { RepositoryRegistry } from '../repositories/repository-registry';

/**
 * Chain maintenance on this node's repositories: delete, consolidate,
 * retention and verification. Refusals from the storage layer (a restore
 * point others depend on, one that is mounted) come back as permanent errors
 * whose message the API shows as is.
 */
export class MaintenanceService {
  private readonly chains: BackupChainRepository;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly repositories: RepositoryRegistry,
  ) {
    this.chains = new BackupChainRepository(prisma);
  }

  /** Storage refusals keep their code in the message ("[CODE] text") so the API can answer 409/404. */
  private static refusal(err: unknown): unknown {
    if (err instanceof StorageError) return new PermanentError(`[${err.code}] ${err.message}`);
    return err;
  }

  /**
   * Restore points in use for restore are held with shared "mount" locks
   * while a maintenance operation runs, so the storage layer refuses to merge
   * or delete them: those mounted for file restore (restore_mounts, by the
   * restore-service of any node) and those served for instant access
   * (nbd_exports with a restore point, by the nbd-exporter of any node).
   */
  private async withMountsHeld<T>(repo: BackupRepository, repositoryId: string, fn: () => Promise<T>): Promise<T> {
    const mounted = await this.prisma.restoreMount.findMany({
      where: { state: { in: ['mounting', 'mounted', 'unmounting'] }, backup: { repositoryId } },
      select: { backupId: true },
    });
    const exported = await this.exportedRestorePoints(repositoryId);
    const ids = [...new Set([...mounted.map((m) => m.backupId), ...exported])];
    const held: LockHandle[] = [];
    // Only backends whose images are local files can be mounted at all.
    if (exposesLocalFiles(repo)) {
      for (const id of ids) {
        // Every restore point the mount reads: the whole chain up to it (gone already: nothing to hold).
        const locks = await repo.acquireChain(id, 'mount').catch((err: unknown) => {
          if (err instanceof RestorePointNotFound || err instanceof ChainBroken) return [];
          throw err;
        });
        held.push(...locks);
      }
    }
    try {
      return await fn();
    } finally {
      await releaseAll(held);
    }
  }

  /** Restore points of this repository that an instant-access export serves. */
  private async exportedRestorePoints(repositoryId: string, backupId?: string): Promise<string[]> {
    const rows = await this.prisma.nbdExport.findMany({
      where: backupId ? { restorePointId: backupId } : { restorePointId: { not: null } },
      select: { restorePointId: true },
    });
    const ids = [...new Set(rows.map((r) => r.restorePointId).filter((id): id is string => id !== null))];
    if (ids.length === 0) return [];
    const inRepo = await this.prisma.backupJob.findMany({ where: { id: { in: ids }, repositoryId }, select: { id: true } });
    return inRepo.map((r) => r.id);
  }

  private async locate(backupId: string) {
    const row = await this.prisma.backupJob.findUnique({ where: { id: backupId }, include: { repository: true } });
    if (!row) throw new PermanentError(`[RESTORE_POINT_NOT_FOUND] backup ${backupId} does not exist`);
    if (!row.repository) throw new PermanentError(`backup ${backupId} has no repository`);
    return { row, repositoryRow: row.repository, repo: await this.repositories.get(row.repository) };
  }

  async delete(d: DeleteRestorePointJobData) {
    const { row, repositoryRow, repo } = await this.locate(d.backupId);
    const mounts = await this.prisma.restoreMount.count({ where: { backupId: d.backupId, state: { in: ['mounting', 'mounted', 'unmounting'] } } });
    if (mounts) throw new PermanentError(`[RESTORE_POINT_BUSY] backup ${d.backupId} is mounted for file restore; unmount it first`);
    if ((await this.exportedRestorePoints(repositoryRow.id, d.backupId)).length) {
      throw new PermanentError(`[RESTORE_POINT_BUSY] backup ${d.backupId} is exported for instant access; end the export first (DELETE /api/v1/restore/export/{name})`);
    }
    if (row.status === 'completed') {
      try {
        await this.withMountsHeld(repo, repositoryRow.id, () => repo.delete(d.backupId));
      } catch (err) {
        throw MaintenanceService.refusal(err);
      }
    }
    await this.prisma.backupJob.deleteMany({ where: { id: d.backupId, status: { not: 'completed' } } });
    return this.chains.syncDisk(repo, repositoryRow.id, row.vmContextId, row.diskId);
  }

  async verify(d: VerifyRestorePointJobData) {
    const { row, repositoryRow, repo } = await this.locate(d.backupId);
    const result = await repo.verify(d.backupId).catch((err: unknown) => {
      throw MaintenanceService.refusal(err);
    });
    await this.prisma.backupJob.update({
      where: { id: d.backupId },
      data: { verifiedAt: new Date(result.at), verifyStatus: result.ok ? 'ok' : 'failed' },
    });
    await this.chains.syncDisk(repo, repositoryRow.id, row.vmContextId, row.diskId);
    return result;
  }

  async consolidate(d: ConsolidateChainJobData) {
    const chain = await this.prisma.backupChain.findUnique({ where: { vmContextId_diskId: { vmContextId: d.vmContextId, diskId: d.diskId } } });
    if (!chain) throw new PermanentError(`VM ${d.vmContextId} disk ${d.diskId} has no backup chain`);
    const { repositoryRow, repo } = await this.locate(chain.latestBackupId);
    const info = await repo.chain(chain.latestBackupId);
    const ids = info.restorePoints.map((p) => p.id);
    const toId = d.upToBackupId ?? ids.at(-2);
    const fromId = ids[0];
    if (!toId || !fromId || ids.length < 2) throw new PermanentError('the chain has nothing to merge (one restore point)');
    if (!ids.includes(toId)) throw new PermanentError(`backup ${toId} is not in the current chain of VM ${d.vmContextId} disk ${d.diskId}`);
    let result;
    try {
      result = await this.withMountsHeld(repo, repositoryRow.id, () => repo.consolidate({ fromId, toId }));
    } catch (err) {
      throw MaintenanceService.refusal(err);
    }
    await this.chains.syncDisk(repo, repositoryRow.id, d.vmContextId, d.diskId);
    return result;
  }

  async retention(d: ApplyRetentionJobData) {
    const repoRow = await this.prisma.backupRepository.findUnique({ where: { id: d.repositoryId } });
    if (!repoRow) throw new PermanentError(`repository ${d.repositoryId} does not exist`);
    const repo = await this.repositories.get(repoRow);
    let policy: RetentionPolicy | undefined = d.policy;
    if (!policy) {
      const stored =
        (d.vmContextId ? await this.prisma.retentionPolicy.findFirst({ where: { repositoryId: d.repositoryId, vmContextId: d.vmContextId } }) : null) ??
        (await this.prisma.retentionPolicy.findFirst({ where: { repositoryId: d.repositoryId, vmContextId: null } }));
      if (!stored) throw new PermanentError(`repository ${repoRow.name} has no retention policy${d.vmContextId ? ' for this VM' : ''}`);
      policy = { keepLast: stored.keepLast, daily: stored.keepDaily, weekly: stored.keepWeekly, monthly: stored.keepMonthly };
    }
    const effective = policy;
    if (!effective.keepLast && !effective.daily && !effective.weekly && !effective.monthly) {
      throw new PermanentError('the retention policy keeps nothing; refusing to delete every restore point');
    }
    const result = await this.withMountsHeld(repo, repoRow.id, () => applyRetention(repo, effective, { vmContextId: d.vmContextId, dryRun: d.dryRun }));
    if (!d.dryRun) {
      const disks = await this.prisma.backupJob.findMany({
        where: { repositoryId: d.repositoryId, ...(d.vmContextId ? { vmContextId: d.vmContextId } : {}) },
        select: { vmContextId: true, diskId: true },
        distinct: ['vmContextId', 'diskId'],
      });
      for (const k of disks) await this.chains.syncDisk(repo, d.repositoryId, k.vmContextId, k.diskId);
    }
    return result;
  }
}
