import { Inject, Injectable, NotFoundException } from '@nestjs/common';
import { JobIds, JobNames } from '@sendense/contracts';
import type { PrismaClient } from '@sendense/db';
import { PRISMA } from '../common/tokens';
import { BackupsService } from '../backups/backups.service';
import { toBackupDto } from '../backups/backup-view';
import { MaintenanceDispatcher } from '../jobs/maintenance.service';
import { VmsService } from '../vms/vms.service';
import type { ConsolidationDto, DiskChainDto, VmChainsDto } from './dto/chain.dto';

@Injectable()
export class ChainsService {
  constructor(
    @Inject(PRISMA) private readonly prisma: PrismaClient,
    private readonly backups: BackupsService,
    private readonly maintenance: MaintenanceDispatcher,
    private readonly vms: VmsService,
  ) {}

  async chain(q: { vmContextId?: string; vmName?: string; diskId?: number }): Promise<VmChainsDto> {
    const ctx = await this.vms.resolve(q);
    const chains = await this.prisma.backupChain.findMany({
      where: { vmContextId: ctx.contextId, ...(q.diskId !== undefined ? { diskId: q.diskId } : {}) },
      orderBy: { diskId: 'asc' },
    });
    const out: DiskChainDto[] = [];
    for (const c of chains) {
      const latest = await this.prisma.backupJob.findUniqueOrThrow({ where: { id: c.latestBackupId } });
      const ids = await this.backups.chainIds(latest);
      const rows = await this.prisma.backupJob.findMany({ where: { id: { in: ids } } });
      const byId = new Map(rows.map((r) => [r.id, r]));
      const points = ids.flatMap((id) => byId.get(id) ?? []);
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
    const chain = await this.prisma.backupChain.findUnique({ where: { vmContextId_diskId: { vmContextId: ctx.contextId, diskId: req.diskId } } });
    if (!chain) throw new NotFoundException(`VM ${ctx.vmName} disk ${req.diskId} has no backup chain`);
    const latest = await this.prisma.backupJob.findUniqueOrThrow({ where: { id: chain.latestBackupId } });
    return (await this.maintenance.run(
      latest.repositoryId,
      JobNames.ConsolidateChain,
      { vmContextId: ctx.contextId, diskId: req.diskId, repositoryId: latest.repositoryId ?? '', upToBackupId: req.upToBackupId, requestedBy: req.requestedBy },
      JobIds.consolidate(ctx.contextId, req.diskId),
      60 * 60_000,
    )) as ConsolidationDto;
  }
}
