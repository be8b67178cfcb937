import type { ApplyRetentionJobData, ConsolidateChainJobData, DeleteRestorePointJobData, VerifyRestorePointJobData } from '@sendense/contracts';
import {
  BackupChainRepository,
  BackupJobRepository,
  BackupRepositoryRepository,
  NbdExportRepository,
  RestoreMountRepository,
  RetentionPolicyRepository,
  type PrismaClient,
} from '@sendense/db';
import {
  applyRetention,
  ChainBroken,
  exposesLocalFiles,
  releaseAll,
  RestorePointNotFound,
  StorageError,
  type BackupRepository,
  type LockHandle,
  type RetentionPolicy,
} from '@sendense/storage';
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
  private readonly jobs: BackupJobRepository;
  private readonly repositoryRows: BackupRepositoryRepository;
  private readonly mounts: RestoreMountRepository;
  private readonly exports: NbdExportRepository;
  private readonly retentionPolicies: RetentionPolicyRepository;

  constructor(
    prisma: PrismaClient,
    private readonly repositories: RepositoryRegistry,
  ) {
    this.chains = new BackupChainRepository(prisma);
    this.jobs = new BackupJobRepository(prisma);
    this.repositoryRows = new BackupRepositoryRepository(prisma);
    this.mounts = new RestoreMountRepository(prisma);
    this.exports = new NbdExportRepository(prisma);
    this.retentionPolicies = new RetentionPolicyRepository(prisma);
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
    const mounted = await this.mounts.heldInRepository(repositoryId);
    const exported = await this.exports.servedRestorePoints(repositoryId);
    const ids = [...new Set([...mounted, ...exported])];
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

  private async locate(backupId: string) {
    const row = await this.jobs.findWithRepository(backupId);
    if (!row) throw new PermanentError(`[RESTORE_POINT_NOT_FOUND] backup ${backupId} does not exist`);
    if (!row.repository) throw new PermanentError(`backup ${backupId} has no repository`);
    return { row, repositoryRow: row.repository, repo: await this.repositories.get(row.repository) };
  }

  async delete(d: DeleteRestorePointJobData) {
    const { row, repositoryRow, repo } = await this.locate(d.backupId);
    if (await this.mounts.countHolding(d.backupId))
      throw new PermanentError(`[RESTORE_POINT_BUSY] backup ${d.backupId} is mounted for file restore; unmount it first`);
    if ((await this.exports.servedRestorePoints(repositoryRow.id, d.backupId)).length) {
      throw new PermanentError(
        `[RESTORE_POINT_BUSY] backup ${d.backupId} is exported for instant access; end the export first (DELETE /api/v1/restore/export/{name})`,
      );
    }
    if (row.status === 'completed') {
      try {
        await this.withMountsHeld(repo, repositoryRow.id, () => repo.delete(d.backupId));
      } catch (err) {
        throw MaintenanceService.refusal(err);
      }
    }
    await this.jobs.deleteUnlessCompleted(d.backupId);
    return this.chains.syncDisk(repo, repositoryRow.id, row.vmContextId, row.diskId);
  }

  async verify(d: VerifyRestorePointJobData) {
    const { row, repositoryRow, repo } = await this.locate(d.backupId);
    const result = await repo.verify(d.backupId).catch((err: unknown) => {
      throw MaintenanceService.refusal(err);
    });
    await this.jobs.recordVerification(d.backupId, new Date(result.at), result.ok);
    await this.chains.syncDisk(repo, repositoryRow.id, row.vmContextId, row.diskId);
    return result;
  }

  async consolidate(d: ConsolidateChainJobData) {
    const chain = await this.chains.find(d.vmContextId, d.diskId);
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
    const repoRow = await this.repositoryRows.find(d.repositoryId);
    if (!repoRow) throw new PermanentError(`repository ${d.repositoryId} does not exist`);
    const repo = await this.repositories.get(repoRow);
    let policy: RetentionPolicy | undefined = d.policy;
    if (!policy) {
      const stored = await this.retentionPolicies.effective(d.repositoryId, d.vmContextId);
      if (!stored) throw new PermanentError(`repository ${repoRow.name} has no retention policy${d.vmContextId ? ' for this VM' : ''}`);
      policy = { keepLast: stored.keepLast, daily: stored.daily, weekly: stored.weekly, monthly: stored.monthly };
    }
    const effective = policy;
    if (!effective.keepLast && !effective.daily && !effective.weekly && !effective.monthly) {
      throw new PermanentError('the retention policy keeps nothing; refusing to delete every restore point');
    }
    const result = await this.withMountsHeld(repo, repoRow.id, () => applyRetention(repo, effective, { vmContextId: d.vmContextId, dryRun: d.dryRun }));
    if (!d.dryRun) {
      const disks = await this.jobs.disksIn(d.repositoryId, d.vmContextId);
      for (const k of disks) await this.chains.syncDisk(repo, d.repositoryId, k.vmContextId, k.diskId);
    }
    return result;
  }
}
