import { randomUUID } from 'node:crypto';
import type { BackupPolicySpec, PolicyRunTrigger, PolicyRunVm, PolicySelector, RetentionPolicy } from '@sendense/contracts';
import type { PrismaClient } from '../prisma-client';
import { Prisma, type BackupPolicy as PolicyRow, type PolicyRun as RunRow, type PolicyRunStatus } from '../generated/client';

export interface BackupPolicyRecord extends BackupPolicySpec {
  id: string;
  paused: boolean;
  createdAt: Date;
  updatedAt: Date;
}

export interface PolicyRunRecord {
  id: string;
  policyId: string;
  queueJobId: string;
  trigger: PolicyRunTrigger;
  scheduledFor: Date | null;
  status: PolicyRunStatus;
  vms: PolicyRunVm[];
  bytesTransferred: number;
  message: string | null;
  startedAt: Date;
  finishedAt: Date | null;
  durationMs: number | null;
}

/** What the type rules of a policy need to know about a VM's backups in one repository. */
export interface VmBackupState {
  /** Completed full (any disk) most recently. */
  lastFullAt: Date | null;
  /** Completed incremental runs since that full. */
  incrementalsSinceFull: number;
  /** Completed backup of any type most recently. */
  lastSuccessAt: Date | null;
}

function toPolicy(r: PolicyRow): BackupPolicyRecord {
  return {
    id: r.id,
    name: r.name,
    cron: r.cron,
    timezone: r.timezone,
    repositoryId: r.repositoryId,
    selector: (r.selector ?? {}) as PolicySelector,
    fullEveryDays: r.fullEveryDays,
    fullAfterIncrementals: r.fullAfterIncrementals,
    syntheticFull: r.syntheticFull,
    retention: (r.retention ?? null) as RetentionPolicy | null,
    windowEnd: r.windowEnd,
    concurrency: r.concurrency,
    maxAgeHours: r.maxAgeHours,
    paused: r.paused,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  };
}

function toRun(r: RunRow): PolicyRunRecord {
  return {
    id: r.id,
    policyId: r.policyId,
    queueJobId: r.queueJobId,
    trigger: r.trigger as PolicyRunTrigger,
    scheduledFor: r.scheduledFor,
    status: r.status,
    vms: (r.vms ?? []) as unknown as PolicyRunVm[],
    bytesTransferred: Number(r.bytesTransferred),
    message: r.message,
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
    durationMs: r.finishedAt ? r.finishedAt.getTime() - r.startedAt.getTime() : null,
  };
}

function json(v: unknown): Prisma.InputJsonValue | typeof Prisma.DbNull {
  return v === null || v === undefined ? Prisma.DbNull : (v as Prisma.InputJsonValue);
}

/** backup_policies and their runs (policy_runs). */
export class BackupPolicyRepository {
  constructor(private readonly prisma: PrismaClient) {}

  async create(spec: BackupPolicySpec): Promise<BackupPolicyRecord> {
    const row = await this.prisma.backupPolicy.create({
      data: {
        id: randomUUID(),
        ...spec,
        selector: spec.selector as Prisma.InputJsonObject,
        retention: json(spec.retention),
      },
    });
    return toPolicy(row);
  }

  async update(id: string, patch: Partial<BackupPolicySpec> & { paused?: boolean }): Promise<BackupPolicyRecord | null> {
    const { selector, retention, ...rest } = patch;
    try {
      const row = await this.prisma.backupPolicy.update({
        where: { id },
        data: {
          ...rest,
          ...(selector !== undefined ? { selector: selector as Prisma.InputJsonObject } : {}),
          ...(retention !== undefined ? { retention: json(retention) } : {}),
        },
      });
      return toPolicy(row);
    } catch (err) {
      if (err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2025') return null;
      throw err;
    }
  }

  async find(id: string): Promise<BackupPolicyRecord | null> {
    const row = await this.prisma.backupPolicy.findUnique({ where: { id } });
    return row ? toPolicy(row) : null;
  }

  /** By id or by name. */
  async findByIdOrName(idOrName: string): Promise<BackupPolicyRecord | null> {
    const row = await this.prisma.backupPolicy.findFirst({ where: { OR: [{ id: idOrName }, { name: idOrName }] } });
    return row ? toPolicy(row) : null;
  }

  /** By name. */
  async list(): Promise<BackupPolicyRecord[]> {
    return (await this.prisma.backupPolicy.findMany({ orderBy: { name: 'asc' } })).map(toPolicy);
  }

  async delete(id: string): Promise<boolean> {
    const r = await this.prisma.backupPolicy.deleteMany({ where: { id } });
    return r.count > 0;
  }

  /**
   * The run of one queue job: created on first sight, the same row when the
   * job is seen again (a worker that died mid-run and the job retried).
   */
  async startRun(r: {
    policyId: string;
    queueJobId: string;
    trigger: PolicyRunTrigger;
    scheduledFor: Date | null;
  }): Promise<{ run: PolicyRunRecord; resumed: boolean }> {
    const existing = await this.prisma.policyRun.findUnique({ where: { queueJobId: r.queueJobId } });
    if (existing) return { run: toRun(existing), resumed: true };
    try {
      const row = await this.prisma.policyRun.create({ data: { id: randomUUID(), ...r, vms: [] } });
      return { run: toRun(row), resumed: false };
    } catch (err) {
      // Two workers on one slot: the unique queue_job_id lets one of them through.
      if (err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002') {
        return { run: toRun(await this.prisma.policyRun.findUniqueOrThrow({ where: { queueJobId: r.queueJobId } })), resumed: true };
      }
      throw err;
    }
  }

  async updateRun(id: string, patch: { vms?: PolicyRunVm[]; status?: PolicyRunStatus; message?: string | null; finished?: boolean }): Promise<PolicyRunRecord> {
    const bytes = patch.vms ? BigInt(patch.vms.reduce((s, v) => s + v.bytes, 0)) : undefined;
    const row = await this.prisma.policyRun.update({
      where: { id },
      data: {
        ...(patch.vms ? { vms: patch.vms as unknown as Prisma.InputJsonArray, bytesTransferred: bytes } : {}),
        ...(patch.status ? { status: patch.status } : {}),
        ...(patch.message !== undefined ? { message: patch.message } : {}),
        ...(patch.finished ? { finishedAt: new Date() } : {}),
      },
    });
    return toRun(row);
  }

  /** Newest first. */
  async runs(policyId: string, page: { limit: number; offset: number }): Promise<{ total: number; runs: PolicyRunRecord[] }> {
    const [total, rows] = await Promise.all([
      this.prisma.policyRun.count({ where: { policyId } }),
      this.prisma.policyRun.findMany({ where: { policyId }, orderBy: [{ startedAt: 'desc' }, { id: 'asc' }], take: page.limit, skip: page.offset }),
    ]);
    return { total, runs: rows.map(toRun) };
  }

  async lastRun(policyId: string): Promise<PolicyRunRecord | null> {
    const row = await this.prisma.policyRun.findFirst({ where: { policyId }, orderBy: { startedAt: 'desc' } });
    return row ? toRun(row) : null;
  }

  /** Registered VMs, by name (what a policy's selector is matched against). */
  async vms(): Promise<{ contextId: string; vmName: string; vcenterId: string | null; vmMoref: string }[]> {
    return this.prisma.vmContext.findMany({ select: { contextId: true, vmName: true, vcenterId: true, vmMoref: true }, orderBy: { vmName: 'asc' } });
  }

  async vmBackupState(vmContextId: string, repositoryId: string): Promise<VmBackupState> {
    const done = { vmContextId, repositoryId, status: 'completed' as const };
    const [full, last] = await Promise.all([
      this.prisma.backupJob.findFirst({ where: { ...done, backupType: 'full' }, orderBy: { completedAt: 'desc' }, select: { completedAt: true } }),
      this.prisma.backupJob.findFirst({ where: done, orderBy: { completedAt: 'desc' }, select: { completedAt: true } }),
    ]);
    const lastFullAt = full?.completedAt ?? null;
    const incr = await this.prisma.backupJob.findMany({
      where: { ...done, backupType: 'incremental', ...(lastFullAt ? { completedAt: { gt: lastFullAt } } : {}) },
      select: { runId: true },
      distinct: ['runId'],
    });
    return { lastFullAt, incrementalsSinceFull: incr.length, lastSuccessAt: last?.completedAt ?? null };
  }
}
