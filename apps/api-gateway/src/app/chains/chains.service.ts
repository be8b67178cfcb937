import { Inject, Injectable, NotFoundException } from '@nestjs/common';
import { JobIds, JobNames } from '@sendense/contracts';
import { BackupChainRepository, BackupJobRepository, type BackupChain, type BackupJob } from '@sendense/db';
import { BackupsService } from '../backups/backups.service';
import { toBackupDto } from '../backups/backup-view';
import { MaintenanceDispatcher } from '../jobs/maintenance.service';
import { VmsService } from '../vms/vms.service';
import type { ConsolidationDto, DiskChainDto, VmChainsDto } from './dto/chain.dto';

@Injectable()
export class ChainsService {
  constructor(
    @Inject(BackupChainRepository) private readonly chains: BackupChainRepository,
    @Inject(BackupJobRepository) private readonly jobs: BackupJobRepository,
    private readonly backups: BackupsService,
    private readonly maintenance: MaintenanceDispatcher,
    private readonly vms: VmsService,
  ) {}

  async chain(q: { vmContextId?: string; vmName?: string; diskId?: number }): Promise<VmChainsDto> {
    const ctx = await this.vms.resolve(q);
    const chains = await this.chains.listForVm(ctx.contextId, q.diskId);
    const out: DiskChainDto[] = [];
    for (const c of chains) {
      const latest = await this.latestOf(c, ctx.vmName);
      const points = await this.jobs.listByIds(await this.backups.chainIds(latest));
      out.push({
        disk_id: c.diskId,
        full_backup_id: c.fullBackupId,
        latest_backup_id: c.latestBackupId,
        total_backups: c.totalBackups,
        total_size_bytes: Number(c.totalSizeBytes),
        virtual_size_bytes: Number(latest.virtualSizeBytes ?? 0n),
        // A point whose CBT audit failed makes the chain from it on suspect: the next backup is full.
        suspect: points.some((p) => p.suspectReason),
        suspect_reason: points.find((p) => p.suspectReason)?.suspectReason ?? null,
        restore_points: points.map(toBackupDto),
      });
    }
    return { vm_context_id: ctx.contextId, vm_name: ctx.vmName, chains: out };
  }

  async consolidate(req: { vmContextId?: string; vmName?: string; diskId: number; upToBackupId?: string; requestedBy: string }): Promise<ConsolidationDto> {
    const ctx = await this.vms.resolve(req);
    const chain = await this.chains.find(ctx.contextId, req.diskId);
    if (!chain) throw new NotFoundException(`VM ${ctx.vmName} disk ${req.diskId} has no backup chain`);
    const latest = await this.latestOf(chain, ctx.vmName);
    return (await this.maintenance.run(
      latest.repositoryId,
      JobNames.ConsolidateChain,
      { vmContextId: ctx.contextId, diskId: req.diskId, repositoryId: latest.repositoryId ?? '', upToBackupId: req.upToBackupId, requestedBy: req.requestedBy },
      JobIds.consolidate(ctx.contextId, req.diskId),
      60 * 60_000,
    )) as ConsolidationDto;
  }

  /** The chain's newest restore point; its row gone (deleted under the chain row) is a 404 that says so. */
  private async latestOf(chain: BackupChain, vmName: string): Promise<BackupJob> {
    const latest = await this.jobs.find(chain.latestBackupId);
    if (!latest)
      throw new NotFoundException(
        `VM ${vmName} disk ${chain.diskId}: the chain's latest backup ${chain.latestBackupId} has no record; run retention or a backup to resync the chain`,
      );
    return latest;
  }
}
