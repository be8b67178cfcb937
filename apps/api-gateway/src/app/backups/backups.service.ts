import {
  BadRequestException,
  ConflictException,
  HttpException,
  Inject,
  Injectable,
  NotFoundException,
  UnprocessableEntityException,
} from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { CANCEL_CHANNEL, JobIds, JobNames, QueueNames, type BackupType, type JobProgress } from '@sendense/contracts';
import type { BackupJob, PrismaClient, VmContext } from '@sendense/db';
import { PRISMA, REDIS } from '../common/tokens';
import { QueueRegistry } from '../queues/queue-registry.service';
import { RepositoriesService } from '../repositories/repositories.service';
import { RestoreProxyService } from '../restore/restore.service';

const RUN_KEY = (runId: string) => `sendense:run:${runId}`;
const RUN_TTL_S = 30 * 24 * 3600;

export interface RunRef {
  queue: string;
  jobId: string;
  vmContextId: string;
  repositoryId: string;
}

export function publicBackup(b: BackupJob) {
  return {
    id: b.id,
    run_id: b.runId,
    vm_context_id: b.vmContextId,
    vm_name: b.vmName,
    disk_id: b.diskId,
    backup_type: b.backupType,
    requested_type: b.requestedType,
    fallback_reason: b.fallbackReason,
    status: b.status,
    repository_id: b.repositoryId,
    repository_path: b.repositoryPath,
    parent_backup_id: b.parentBackupId,
    change_id: b.changeId,
    bytes_transferred: Number(b.bytesTransferred),
    total_bytes: Number(b.totalBytes),
    virtual_size_bytes: b.virtualSizeBytes === null ? null : Number(b.virtualSizeBytes),
    allocated_bytes: b.allocatedBytes === null ? null : Number(b.allocatedBytes),
    checksum: b.checksum,
    progress: b.progress,
    error_message: b.errorMessage,
    verified_at: b.verifiedAt,
    verify_status: b.verifyStatus,
    created_at: b.createdAt,
    started_at: b.startedAt,
    completed_at: b.completedAt,
  };
}

/** A maintenance job's failure "[CODE] message" as the HTTP answer it deserves. */
export function httpErrorOfJobFailure(err: unknown): HttpException {
  const message = err instanceof Error ? err.message : String(err);
  const m = /^\[([A-Z_]+)\] (.*)$/s.exec(message);
  const code = m?.[1];
  const text = m?.[2] ?? message;
  switch (code) {
    case 'RESTORE_POINT_NOT_FOUND':
      return new NotFoundException({ code, message: text });
    case 'DEPENDENT_RESTORE_POINTS':
    case 'RESTORE_POINT_BUSY':
    case 'CONSOLIDATION_REFUSED':
    case 'INVALID_STATE':
      return new ConflictException({ code, message: text });
    case 'INVALID_REQUEST':
      return new BadRequestException({ code, message: text });
    default:
      if (/timed out|Job wait/i.test(text)) {
        return new HttpException({ message: `the storage node did not answer in time: ${text}` }, 504);
      }
      return new UnprocessableEntityException({ ...(code ? { code } : {}), message: text });
  }
}

@Injectable()
export class BackupsService {
  constructor(
    @Inject(PRISMA) private readonly prisma: PrismaClient,
    @Inject(REDIS) private readonly redis: Redis,
    private readonly queues: QueueRegistry,
    private readonly repositories: RepositoriesService,
    private readonly restore: RestoreProxyService,
  ) {}

  /** A VM by context id or by name (a name that two vCenters share must be given as context id). */
  async resolveVm(q: { vmContextId?: string; vmName?: string }): Promise<VmContext> {
    if (q.vmContextId) {
      const ctx = await this.prisma.vmContext.findUnique({ where: { contextId: q.vmContextId } });
      if (!ctx) throw new NotFoundException(`no VM with context id ${q.vmContextId}`);
      return ctx;
    }
    if (!q.vmName) throw new BadRequestException('give vm_name or vm_context_id');
    const found = await this.prisma.vmContext.findMany({ where: { vmName: q.vmName } });
    if (!found.length) throw new NotFoundException(`no VM named ${q.vmName} is registered (import it from its vCenter first)`);
    if (found.length > 1) {
      throw new ConflictException(`${found.length} VMs are named ${q.vmName}; give vm_context_id (one of ${found.map((f) => f.contextId).join(', ')})`);
    }
    const [vm] = found;
    if (!vm) throw new NotFoundException(`no VM named ${q.vmName} is registered (import it from its vCenter first)`);
    return vm;
  }

  async start(req: { vmContextId?: string; vmName?: string; backupType: BackupType; repository?: string; requestedBy: string }) {
    const ctx = await this.resolveVm(req);
    let repo;
    if (req.repository) repo = await this.repositories.findByIdOrName(req.repository);
    else {
      const all = await this.prisma.backupRepository.findMany({ where: { enabled: true } });
      if (all.length !== 1) throw new BadRequestException(`give "repository" (${all.length} enabled repositories exist)`);
      [repo] = all;
      if (!repo) throw new BadRequestException('give "repository" (no enabled repository exists)');
    }
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
      throw new ConflictException({ message: `a backup of VM ${ctx.vmName} was just queued (run ${added.data.runId}); it was not started twice`, run_id: added.data.runId });
    }
    const ref: RunRef = { queue, jobId, vmContextId: ctx.contextId, repositoryId: repo.id };
    await this.redis.set(RUN_KEY(runId), JSON.stringify(ref), 'EX', RUN_TTL_S);
    return { run_id: runId, vm_context_id: ctx.contextId, vm_name: ctx.vmName, backup_type: req.backupType, repository: repo.name, status: 'queued' };
  }

  async list(q: { vmContextId?: string; vmName?: string; status?: string; limit: number; offset: number }) {
    const where: Record<string, unknown> = {};
    if (q.vmContextId || q.vmName) where['vmContextId'] = (await this.resolveVm(q)).contextId;
    if (q.status) where['status'] = q.status;
    const [rows, total] = await Promise.all([
      this.prisma.backupJob.findMany({ where, orderBy: [{ createdAt: 'desc' }, { diskId: 'asc' }], take: q.limit, skip: q.offset }),
      this.prisma.backupJob.count({ where }),
    ]);
    return { total, items: rows.map(publicBackup) };
  }

  async get(id: string) {
    const row = await this.prisma.backupJob.findUnique({ where: { id } });
    if (!row) throw new NotFoundException(`no backup with id ${id}`);
    const dependents = await this.prisma.backupJob.findMany({ where: { parentBackupId: id, status: 'completed' }, select: { id: true } });
    return { ...publicBackup(row), chain: await this.chainIds(row), dependents: dependents.map((d) => d.id) };
  }

  /** Oldest first: the full, then each restore point up to this one. */
  private async chainIds(row: BackupJob): Promise<string[]> {
    const ids = [row.id];
    let parent = row.parentBackupId;
    for (let i = 0; parent && i < 10_000; i++) {
      ids.unshift(parent);
      parent = (await this.prisma.backupJob.findUnique({ where: { id: parent }, select: { parentBackupId: true } }))?.parentBackupId ?? null;
    }
    return ids;
  }

  async chain(q: { vmContextId?: string; vmName?: string; diskId?: number }) {
    const ctx = await this.resolveVm(q);
    const chains = await this.prisma.backupChain.findMany({
      where: { vmContextId: ctx.contextId, ...(q.diskId !== undefined ? { diskId: q.diskId } : {}) },
      orderBy: { diskId: 'asc' },
    });
    const out = [];
    for (const c of chains) {
      const latest = await this.prisma.backupJob.findUniqueOrThrow({ where: { id: c.latestBackupId } });
      const ids = await this.chainIds(latest);
      const rows = await this.prisma.backupJob.findMany({ where: { id: { in: ids } } });
      const points = ids.flatMap((id) => rows.filter((r) => r.id === id));
      out.push({
        disk_id: c.diskId,
        full_backup_id: c.fullBackupId,
        latest_backup_id: c.latestBackupId,
        total_backups: c.totalBackups,
        total_size_bytes: Number(c.totalSizeBytes),
        virtual_size_bytes: Number(latest.virtualSizeBytes ?? 0n),
        restore_points: points.map(publicBackup),
      });
    }
    return { vm_context_id: ctx.contextId, vm_name: ctx.vmName, chains: out };
  }

  private async maintenance<N extends Parameters<QueueRegistry['runAndWait']>[1]>(
    repositoryId: string | null,
    name: N,
    data: Parameters<QueueRegistry['runAndWait']>[2] & object,
    jobId: string,
    timeoutMs: number,
  ) {
    if (!repositoryId) throw new ConflictException('this backup has no repository');
    const repo = await this.prisma.backupRepository.findUniqueOrThrow({ where: { id: repositoryId } });
    // Forget mounts the restore-service no longer has, so they do not block this.
    await this.restore.list().catch(() => undefined);
    try {
      return await this.queues.runAndWait(QueueNames.maintenance(repo.storageNode), name, data as never, jobId, timeoutMs);
    } catch (err) {
      throw httpErrorOfJobFailure(err);
    }
  }

  async remove(id: string, requestedBy: string) {
    const row = await this.prisma.backupJob.findUnique({ where: { id } });
    if (!row) throw new NotFoundException(`no backup with id ${id}`);
    if (row.status === 'running' || row.status === 'pending') {
      throw new ConflictException(`backup ${id} is ${row.status}; cancel its job (run ${row.runId}) instead`);
    }
    // Only restore points that exist depend on it (failed attempts keep a parent id but no image).
    const dependents = await this.prisma.backupJob.findMany({ where: { parentBackupId: id, status: 'completed' }, select: { id: true } });
    if (dependents.length) {
      throw new ConflictException({
        code: 'DEPENDENT_RESTORE_POINTS',
        message: `backup ${id} cannot be deleted: ${dependents.map((d) => d.id).join(', ')} depend on it; consolidate the chain (merge it) first`,
        dependents: dependents.map((d) => d.id),
      });
    }
    await this.maintenance(row.repositoryId, JobNames.DeleteRestorePoint, { backupId: id, requestedBy }, JobIds.delete(id), 120_000);
  }

  async verify(id: string, requestedBy: string) {
    const row = await this.prisma.backupJob.findUnique({ where: { id } });
    if (!row) throw new NotFoundException(`no backup with id ${id}`);
    if (row.status !== 'completed') throw new ConflictException(`backup ${id} is ${row.status}; only completed backups can be verified`);
    return this.maintenance(row.repositoryId, JobNames.VerifyRestorePoint, { backupId: id, requestedBy }, JobIds.verify(id), 30 * 60_000);
  }

  async consolidate(req: { vmContextId?: string; vmName?: string; diskId: number; upToBackupId?: string; requestedBy: string }) {
    const ctx = await this.resolveVm(req);
    const chain = await this.prisma.backupChain.findUnique({ where: { vmContextId_diskId: { vmContextId: ctx.contextId, diskId: req.diskId } } });
    if (!chain) throw new NotFoundException(`VM ${ctx.vmName} disk ${req.diskId} has no backup chain`);
    const latest = await this.prisma.backupJob.findUniqueOrThrow({ where: { id: chain.latestBackupId } });
    return this.maintenance(
      latest.repositoryId,
      JobNames.ConsolidateChain,
      { vmContextId: ctx.contextId, diskId: req.diskId, repositoryId: latest.repositoryId ?? '', upToBackupId: req.upToBackupId, requestedBy: req.requestedBy },
      JobIds.consolidate(ctx.contextId, req.diskId),
      60 * 60_000,
    );
  }

  async setRetention(req: { repository: string; vmContextId?: string; keepLast: number; daily: number; weekly: number; monthly: number }) {
    const repo = await this.repositories.findByIdOrName(req.repository);
    if (req.vmContextId) await this.resolveVm({ vmContextId: req.vmContextId });
    if (!req.keepLast && !req.daily && !req.weekly && !req.monthly) {
      throw new BadRequestException('a retention policy must keep something (keep_last, daily, weekly or monthly > 0)');
    }
    const data = { keepLast: req.keepLast, keepDaily: req.daily, keepWeekly: req.weekly, keepMonthly: req.monthly };
    const existing = await this.prisma.retentionPolicy.findFirst({ where: { repositoryId: repo.id, vmContextId: req.vmContextId ?? null } });
    const p = existing
      ? await this.prisma.retentionPolicy.update({ where: { id: existing.id }, data })
      : await this.prisma.retentionPolicy.create({ data: { id: randomUUID(), repositoryId: repo.id, vmContextId: req.vmContextId ?? null, ...data } });
    return { id: p.id, repository_id: p.repositoryId, vm_context_id: p.vmContextId, keep_last: p.keepLast, daily: p.keepDaily, weekly: p.keepWeekly, monthly: p.keepMonthly };
  }

  async listRetention() {
    const rows = await this.prisma.retentionPolicy.findMany({ orderBy: { createdAt: 'asc' } });
    return rows.map((p) => ({ id: p.id, repository_id: p.repositoryId, vm_context_id: p.vmContextId, keep_last: p.keepLast, daily: p.keepDaily, weekly: p.keepWeekly, monthly: p.keepMonthly }));
  }

  async applyRetention(req: { repository: string; vmContextId?: string; dryRun: boolean; requestedBy: string }) {
    const repo = await this.repositories.findByIdOrName(req.repository);
    return this.maintenance(
      repo.id,
      JobNames.ApplyRetention,
      { repositoryId: repo.id, vmContextId: req.vmContextId, dryRun: req.dryRun, requestedBy: req.requestedBy },
      `${JobIds.retention(repo.id, req.vmContextId)}.${req.dryRun ? 'dry' : 'apply'}`,
      60 * 60_000,
    );
  }

  // ---- jobs ----------------------------------------------------------------

  async runRef(runId: string): Promise<RunRef> {
    const raw = await this.redis.get(RUN_KEY(runId));
    if (!raw) throw new NotFoundException(`no job with run id ${runId} (or it is older than 30 days)`);
    return JSON.parse(raw) as RunRef;
  }

  async jobStatus(runId: string) {
    const ref = await this.runRef(runId);
    const job = await this.queues.get(ref.queue).getJob(ref.jobId);
    const sameRun = job && job.data.runId === runId;
    const state = sameRun ? await job.getState() : null;
    const rows = await this.prisma.backupJob.findMany({ where: { runId }, orderBy: { diskId: 'asc' } });
    const events = await this.prisma.jobEvent.findMany({ where: { runId }, orderBy: { id: 'asc' }, take: 200 });
    const status =
      state === 'completed' ? 'completed'
      : state === 'failed' ? (job?.failedReason === 'cancelled' || rows.some((r) => r.status === 'cancelled') ? 'cancelled' : 'failed')
      : state === 'active' ? 'running'
      : state ? 'queued'
      : rows.length && rows.every((r) => r.status === 'completed') ? 'completed'
      : rows.some((r) => r.status === 'failed') ? 'failed'
      : rows.some((r) => r.status === 'cancelled') ? 'cancelled'
      : 'unknown';
    return {
      run_id: runId,
      vm_context_id: ref.vmContextId,
      status,
      attempts_made: sameRun ? job.attemptsMade : null,
      // When the queue took the job, a worker started it, and it ended (last attempt).
      queued_at: sameRun ? isoOrNull(job.timestamp) : null,
      started_at: sameRun ? isoOrNull(job.processedOn) : null,
      finished_at: sameRun ? isoOrNull(job.finishedOn) : null,
      progress: (sameRun ? (job.progress as JobProgress | number) : null) || null,
      error: sameRun && job.failedReason ? job.failedReason : null,
      backups: rows.map(publicBackup),
      events: events.map((e) => ({ at: e.createdAt, level: e.level, phase: e.phase, message: e.message })),
    };
  }

  async cancel(runId: string) {
    const ref = await this.runRef(runId);
    const job = await this.queues.get(ref.queue).getJob(ref.jobId);
    if (!job || job.data.runId !== runId) throw new ConflictException(`job ${runId} is no longer queued or running`);
    const state = await job.getState();
    if (state === 'completed' || state === 'failed') throw new ConflictException(`job ${runId} has already ${state === 'completed' ? 'completed' : 'ended'}`);
    if (state === 'active') {
      await this.redis.publish(CANCEL_CHANNEL, runId);
      return { run_id: runId, status: 'cancelling' };
    }
    await job.remove();
    return { run_id: runId, status: 'cancelled' };
  }
}

function isoOrNull(ms: number | undefined): string | null {
  return ms ? new Date(ms).toISOString() : null;
}
