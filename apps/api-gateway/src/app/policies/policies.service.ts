import { BadRequestException, ConflictException, Inject, Injectable, NotFoundException, type OnModuleDestroy } from '@nestjs/common';
import { Queue } from 'bullmq';
import {
  DefaultJobOptions,
  JobIds,
  JobNames,
  nextSlot,
  policySchedulerState,
  QueueNames,
  retentionKeepsSomething,
  schedulePolicy,
  unschedulePolicy,
  type BackupPolicySpec,
  type RetentionPolicy,
  type RunPolicyJobData,
} from '@sendense/contracts';
import type { GatewaySettings } from '@sendense/config';
import { BackupPolicyRepository, BackupRepositoryRepository, Prisma, type BackupPolicyRecord, type PolicyRunRecord } from '@sendense/db';
import { parseFolderPath } from '@sendense/vsphere';
import { SETTINGS } from '../common/tokens';
import type { CreatePolicyDto, PolicyDto, PolicyRetentionDto, PolicyRunDto, PolicyRunPageDto, PolicyRunStartedDto } from './dto/policy.dto';

function retentionOfApi(r: PolicyRetentionDto | undefined): RetentionPolicy | null {
  if (!r) return null;
  return { keepLast: r.keep_last ?? 0, daily: r.daily ?? 0, weekly: r.weekly ?? 0, monthly: r.monthly ?? 0 };
}

export function runView(r: PolicyRunRecord): PolicyRunDto {
  return {
    id: r.id,
    policy_id: r.policyId,
    trigger: r.trigger,
    scheduled_for: r.scheduledFor?.toISOString() ?? null,
    status: r.status,
    vms: r.vms.map((v) => ({
      vm_context_id: v.vmContextId,
      vm_name: v.vmName,
      run_id: v.runId,
      type: v.type,
      reason: v.reason,
      status: v.status,
      bytes_transferred: v.bytes,
      duration_ms: v.durationMs,
      error: v.error,
    })),
    bytes_transferred: r.bytesTransferred,
    message: r.message,
    started_at: r.startedAt.toISOString(),
    finished_at: r.finishedAt?.toISOString() ?? null,
    duration_ms: r.durationMs,
  };
}

/**
 * Backup policies: stored in backup_policies, scheduled as BullMQ job
 * schedulers on the `policies` queue (libs/contracts policy-schedule.ts),
 * run by whichever backup-worker takes the slot's job.
 */
@Injectable()
export class PoliciesService implements OnModuleDestroy {
  private readonly queue: Queue;

  constructor(
    @Inject(SETTINGS) settings: GatewaySettings,
    @Inject(BackupPolicyRepository) private readonly policies: BackupPolicyRepository,
    @Inject(BackupRepositoryRepository) private readonly repositories: BackupRepositoryRepository,
  ) {
    this.queue = new Queue(QueueNames.policies, {
      connection: { url: settings.REDIS_URL, maxRetriesPerRequest: null, enableOfflineQueue: false },
      prefix: settings.QUEUE_PREFIX,
    });
    this.queue.on('error', () => undefined);
  }

  async onModuleDestroy(): Promise<void> {
    await this.queue.close();
  }

  private async view(p: BackupPolicyRecord): Promise<PolicyDto> {
    const [repo, sched, last] = await Promise.all([
      this.repositories.find(p.repositoryId),
      policySchedulerState(this.queue, p.id).catch(() => ({ scheduled: false, next: null })),
      this.policies.lastRun(p.id),
    ]);
    const r = p.retention;
    return {
      id: p.id,
      name: p.name,
      cron: p.cron,
      timezone: p.timezone,
      repository_id: p.repositoryId,
      repository: repo?.name ?? p.repositoryId,
      vms: {
        names: p.selector.vmNames ?? [],
        ...(p.selector.namePattern ? { name_pattern: p.selector.namePattern } : {}),
        ...(p.selector.folder ? { folder: p.selector.folder } : {}),
      },
      full_every_days: p.fullEveryDays,
      full_after_incrementals: p.fullAfterIncrementals,
      synthetic_full: p.syntheticFull,
      retention: r ? { keep_last: r.keepLast ?? 0, daily: r.daily ?? 0, weekly: r.weekly ?? 0, monthly: r.monthly ?? 0 } : null,
      window_end: p.windowEnd,
      concurrency: p.concurrency,
      max_age_hours: p.maxAgeHours,
      paused: p.paused,
      scheduled: sched.scheduled,
      next_run_at: sched.next ? new Date(sched.next).toISOString() : null,
      last_run: last ? runView(last) : null,
      created_at: p.createdAt.toISOString(),
    };
  }

  private async find(idOrName: string): Promise<BackupPolicyRecord> {
    const p = await this.policies.findByIdOrName(idOrName);
    if (!p) throw new NotFoundException(`no backup policy with id or name ${idOrName}`);
    return p;
  }

  async create(b: CreatePolicyDto): Promise<PolicyDto> {
    const timezone = b.timezone ?? 'UTC';
    const next = nextSlot({ cron: b.cron, timezone });
    if (next instanceof Error) throw new BadRequestException(next.message);
    if (!b.vms.names?.length && !b.vms.name_pattern && !b.vms.folder) throw new BadRequestException('vms needs names, a name_pattern or a folder');
    let folder: string | undefined;
    if (b.vms.folder !== undefined) {
      try {
        folder = parseFolderPath(b.vms.folder).join('/');
      } catch (err) {
        throw new BadRequestException((err as Error).message);
      }
    }
    const repo = await this.repositories.findByIdOrName(b.repository);
    if (!repo) throw new NotFoundException(`no repository with id or name ${b.repository}`);
    const retention = retentionOfApi(b.retention);
    if (retention && !retentionKeepsSomething(retention)) throw new BadRequestException('retention keeps nothing; leave it out to keep every restore point');
    const spec: BackupPolicySpec = {
      name: b.name,
      cron: b.cron,
      timezone,
      repositoryId: repo.id,
      selector: {
        ...(b.vms.names?.length ? { vmNames: b.vms.names } : {}),
        ...(b.vms.name_pattern ? { namePattern: b.vms.name_pattern } : {}),
        ...(folder ? { folder } : {}),
      },
      fullEveryDays: b.full_every_days ?? null,
      fullAfterIncrementals: b.full_after_incrementals ?? null,
      syntheticFull: b.synthetic_full ?? false,
      retention,
      windowEnd: b.window_end ?? null,
      concurrency: b.concurrency ?? 2,
      maxAgeHours: b.max_age_hours ?? null,
    };
    let p: BackupPolicyRecord;
    try {
      p = await this.policies.create(spec);
    } catch (err) {
      if (err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002') throw new ConflictException(`a backup policy named ${b.name} exists`);
      throw err;
    }
    if (b.paused) p = (await this.policies.update(p.id, { paused: true })) ?? p;
    else await schedulePolicy(this.queue, p);
    return this.view(p);
  }

  async list(): Promise<PolicyDto[]> {
    return Promise.all((await this.policies.list()).map((p) => this.view(p)));
  }

  async get(idOrName: string): Promise<PolicyDto> {
    return this.view(await this.find(idOrName));
  }

  /** Stops new runs; a run already going finishes. */
  async pause(idOrName: string): Promise<PolicyDto> {
    const p = await this.find(idOrName);
    await unschedulePolicy(this.queue, p.id);
    return this.view((await this.policies.update(p.id, { paused: true })) ?? p);
  }

  /** Schedules again from now (slots missed while paused are not run). */
  async resume(idOrName: string): Promise<PolicyDto> {
    const p = await this.find(idOrName);
    const resumed = (await this.policies.update(p.id, { paused: false })) ?? p;
    await schedulePolicy(this.queue, resumed);
    return this.view(resumed);
  }

  async runNow(idOrName: string, requestedBy: string): Promise<PolicyRunStartedDto> {
    const p = await this.find(idOrName);
    const data: RunPolicyJobData = { policyId: p.id, trigger: 'manual', requestedBy };
    const job = await this.queue.add(JobNames.RunPolicy, data, { ...DefaultJobOptions.RunPolicyJob, jobId: JobIds.policyManualRun(p.id, Date.now()) });
    return { job_id: job.id ?? '', policy_id: p.id, status: 'queued' };
  }

  async delete(idOrName: string): Promise<{ deleted: string }> {
    const p = await this.find(idOrName);
    await unschedulePolicy(this.queue, p.id);
    await this.policies.delete(p.id);
    return { deleted: p.id };
  }

  async runs(idOrName: string, page: { limit: number; offset: number }): Promise<PolicyRunPageDto> {
    const p = await this.find(idOrName);
    const r = await this.policies.runs(p.id, page);
    return { total: r.total, items: r.runs.map(runView) };
  }
}
