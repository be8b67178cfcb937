import { ConflictException, Inject, Injectable, NotFoundException } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { JobIds, JobNames, QueueNames, type BackupType } from '@sendense/contracts';
import { BackupJobRepository, type BackupJob, type BackupStatus } from '@sendense/db';
import { QueueRegistry } from '../queues/queue-registry.service';
import { RepositoriesService } from '../repositories/repositories.service';
import { VmsService } from '../vms/vms.service';
import { MaintenanceDispatcher } from '../jobs/maintenance.service';
import { RunRegistry } from '../jobs/run-registry.service';
import { toBackupDto } from './backup-view';
import type { BackupDetailDto, BackupListDto, StartedBackupDto, VerificationDto } from './dto/backup.dto';

@Injectable()
export class BackupsService {
  constructor(
    @Inject(BackupJobRepository) private readonly jobs: BackupJobRepository,
    private readonly queues: QueueRegistry,
    private readonly runs: RunRegistry,
    private readonly maintenance: MaintenanceDispatcher,
    private readonly repositories: RepositoriesService,
    private readonly vms: VmsService,
  ) {}

  async start(req: { vmContextId?: string; vmName?: string; backupType: BackupType; repository?: string; requestedBy: string }): Promise<StartedBackupDto> {
    const ctx = await this.vms.resolve(req);
    const repo = req.repository ? await this.repositories.findByIdOrName(req.repository) : await this.repositories.theOnlyEnabled();
    if (!repo.enabled) throw new ConflictException(`repository ${repo.name} is disabled`);
    const queue = QueueNames.backup(repo.storageNode);
    const jobId = JobIds.backupVm(ctx.contextId);
    const q = this.queues.get(queue);
    const existing = await q.getJob(jobId);
    if (existing) {
      const state = await existing.getState();
      if (state === 'completed' || state === 'failed') await existing.remove();
      else {
        throw new ConflictException({
          message: `a backup of VM ${ctx.vmName} is already ${state === 'active' ? 'running' : 'queued'} (run ${existing.data.runId}); it was not started twice`,
          run_id: existing.data.runId,
        });
      }
    }
    const runId = randomUUID();
    const added = await this.queues.add(
      queue,
      JobNames.BackupVm,
      { runId, vmContextId: ctx.contextId, requestedType: req.backupType, repositoryId: repo.id, requestedBy: req.requestedBy },
      jobId,
    );
    // Two requests at once: BullMQ keeps the first job under the id and returns it.
    if (added.data.runId !== runId) {
      throw new ConflictException({
        message: `a backup of VM ${ctx.vmName} was just queued (run ${added.data.runId}); it was not started twice`,
        run_id: added.data.runId,
      });
    }
    await this.runs.save(runId, { queue, jobId, vmContextId: ctx.contextId, repositoryId: repo.id });
    return { run_id: runId, vm_context_id: ctx.contextId, vm_name: ctx.vmName, backup_type: req.backupType, repository: repo.name, status: 'queued' };
  }

  async list(q: { vmContextId?: string; vmName?: string; status?: string; limit: number; offset: number }): Promise<BackupListDto> {
    const vmContextId = q.vmContextId || q.vmName ? (await this.vms.resolve(q)).contextId : undefined;
    // status is one of BACKUP_STATUSES (ListBackupsQuery validates it).
    const { rows, total } = await this.jobs.page({ vmContextId, status: q.status as BackupStatus | undefined }, { limit: q.limit, offset: q.offset });
    return { total, items: rows.map(toBackupDto) };
  }

  async get(id: string): Promise<BackupDetailDto> {
    const row = await this.find(id);
    return { ...toBackupDto(row), chain: await this.chainIds(row), dependents: await this.jobs.completedDependents(id) };
  }

  /** Oldest first: the full, then each restore point up to this one. */
  chainIds(row: BackupJob): Promise<string[]> {
    return this.jobs.chainIds(row);
  }

  private async find(id: string): Promise<BackupJob> {
    const row = await this.jobs.find(id);
    if (!row) throw new NotFoundException(`no backup with id ${id}`);
    return row;
  }

  async remove(id: string, requestedBy: string): Promise<void> {
    const row = await this.find(id);
    if (row.status === 'running' || row.status === 'pending') {
      throw new ConflictException(`backup ${id} is ${row.status}; cancel its job (run ${row.runId}) instead`);
    }
    // Only restore points that exist depend on it (failed attempts keep a parent id but no image).
    const dependents = await this.jobs.completedDependents(id);
    if (dependents.length) {
      throw new ConflictException({
        code: 'DEPENDENT_RESTORE_POINTS',
        message: `backup ${id} cannot be deleted: ${dependents.join(', ')} depend on it; consolidate the chain (merge it) first`,
        dependents,
      });
    }
    await this.maintenance.run(row.repositoryId, JobNames.DeleteRestorePoint, { backupId: id, requestedBy }, JobIds.delete(id), 120_000);
  }

  async verify(id: string, requestedBy: string): Promise<VerificationDto> {
    const row = await this.find(id);
    if (row.status !== 'completed') throw new ConflictException(`backup ${id} is ${row.status}; only completed backups can be verified`);
    return (await this.maintenance.run(
      row.repositoryId,
      JobNames.VerifyRestorePoint,
      { backupId: id, requestedBy },
      JobIds.verify(id),
      30 * 60_000,
    )) as VerificationDto;
  }
}
