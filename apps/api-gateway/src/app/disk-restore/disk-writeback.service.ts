import { BadRequestException, ConflictException, Inject, Injectable, NotFoundException } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { JobIds, JobNames, QueueNames } from '@sendense/contracts';
import { VmContextRepository, VmDiskRepository } from '@sendense/db';
import { RestorePointLocator } from '../common/restore-points';
import { RunRegistry } from '../jobs/run-registry.service';
import { QueueRegistry } from '../queues/queue-registry.service';
import type { StartedRestoreDto } from './dto/disk-restore.dto';

/**
 * Writing a restore point back into a VM's disk: the gateway resolves the
 * target (default: the restore point's own VM and disk) and queues a
 * RestoreDiskJob on the backup queue of the repository's node; the run is
 * followed and cancelled through /api/v1/jobs like a backup run.
 */
@Injectable()
export class DiskWritebackService {
  constructor(
    private readonly restorePoints: RestorePointLocator,
    @Inject(VmContextRepository) private readonly vms: VmContextRepository,
    @Inject(VmDiskRepository) private readonly disks: VmDiskRepository,
    private readonly queues: QueueRegistry,
    private readonly runs: RunRegistry,
  ) {}

  async start(req: {
    backupId: string;
    mode: 'quick' | 'full';
    targetVmContextId?: string;
    targetDeviceKey?: number;
    requestedBy: string;
  }): Promise<StartedRestoreDto> {
    const row = await this.restorePoints.completed(req.backupId, 'restored');
    const targetCtx = req.targetVmContextId ?? row.vmContextId;
    const ctx = await this.vms.findWithDisks(targetCtx);
    if (!ctx) throw new NotFoundException(`no VM with context id ${targetCtx}`);
    let deviceKey = req.targetDeviceKey;
    if (deviceKey === undefined) {
      // The same disk: by device key on the original VM, else by index (the n-th disk) on another.
      const source = await this.disks.findByIndex(row.vmContextId, row.diskId);
      const same = ctx.disks.find((d) => d.diskIndex === row.diskId);
      deviceKey = targetCtx === row.vmContextId ? source?.deviceKey : same?.deviceKey;
      if (deviceKey === undefined) throw new BadRequestException(`VM ${ctx.vmName} has no disk ${row.diskId}; give target_device_key`);
    } else if (!ctx.disks.some((d) => d.deviceKey === deviceKey)) {
      throw new BadRequestException(
        `VM ${ctx.vmName} has no disk with device key ${deviceKey} (it has ${ctx.disks.map((d) => d.deviceKey).join(', ') || 'none'})`,
      );
    }
    const queue = QueueNames.backup(row.repository.storageNode);
    const jobId = JobIds.restoreDisk(targetCtx);
    const existing = await this.queues.get(queue).getJob(jobId);
    if (existing) {
      const state = await existing.getState();
      if (state === 'completed' || state === 'failed') await existing.remove();
      else
        throw new ConflictException({
          message: `a disk restore into VM ${ctx.vmName} is already ${state === 'active' ? 'running' : 'queued'} (run ${existing.data.runId})`,
          run_id: existing.data.runId,
        });
    }
    const runId = randomUUID();
    const added = await this.queues.add(
      queue,
      JobNames.RestoreDisk,
      { runId, restoreId: runId, backupId: row.id, targetVmContextId: targetCtx, targetDeviceKey: deviceKey, mode: req.mode, requestedBy: req.requestedBy },
      jobId,
    );
    if (added.data.runId !== runId)
      throw new ConflictException({ message: `a disk restore into VM ${ctx.vmName} was just queued (run ${added.data.runId})`, run_id: added.data.runId });
    await this.runs.save(runId, { queue, jobId, vmContextId: targetCtx, repositoryId: row.repository.id });
    return {
      run_id: runId,
      backup_id: row.id,
      target_vm_context_id: targetCtx,
      target_vm_name: ctx.vmName,
      target_device_key: deviceKey,
      mode: req.mode,
      status: 'queued',
    };
  }
}
