import { randomUUID } from 'node:crypto';
import type { RetentionPolicy } from '@sendense/contracts';
import type { PrismaClient } from '../prisma-client';
import type { RetentionPolicy as RetentionPolicyRow } from '../generated/client';

/** A stored policy: its scope and the counts (libs/contracts RetentionPolicy, every count present). */
export interface RetentionPolicyRecord extends Required<RetentionPolicy> {
  id: string;
  repositoryId: string;
  /** null: the policy of the whole repository. */
  vmContextId: string | null;
  createdAt: Date;
  updatedAt: Date;
}

function toRecord(r: RetentionPolicyRow): RetentionPolicyRecord {
  return {
    id: r.id,
    repositoryId: r.repositoryId,
    vmContextId: r.vmContextId,
    keepLast: r.keepLast,
    daily: r.keepDaily,
    weekly: r.keepWeekly,
    monthly: r.keepMonthly,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  };
}

function columns(p: RetentionPolicy) {
  return { keepLast: p.keepLast ?? 0, keepDaily: p.daily ?? 0, keepWeekly: p.weekly ?? 0, keepMonthly: p.monthly ?? 0 };
}

/** The retention_policies table: one policy per repository, and optionally one per VM in it. */
export class RetentionPolicyRepository {
  constructor(private readonly prisma: PrismaClient) {}

  /** Set the policy of a repository (vmContextId null) or of one VM in it, replacing the one it had. */
  async set(scope: { repositoryId: string; vmContextId: string | null }, policy: RetentionPolicy): Promise<RetentionPolicyRecord> {
    const data = columns(policy);
    const existing = await this.prisma.retentionPolicy.findFirst({ where: scope });
    const row = existing
      ? await this.prisma.retentionPolicy.update({ where: { id: existing.id }, data })
      : await this.prisma.retentionPolicy.create({ data: { id: randomUUID(), ...scope, ...data } });
    return toRecord(row);
  }

  /** Oldest first. */
  async list(): Promise<RetentionPolicyRecord[]> {
    return (await this.prisma.retentionPolicy.findMany({ orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] })).map(toRecord);
  }

  /** The policy that applies: the VM's own when it has one, else the repository's; null when neither exists. */
  async effective(repositoryId: string, vmContextId?: string): Promise<RetentionPolicyRecord | null> {
    const own = vmContextId ? await this.prisma.retentionPolicy.findFirst({ where: { repositoryId, vmContextId } }) : null;
    const row = own ?? (await this.prisma.retentionPolicy.findFirst({ where: { repositoryId, vmContextId: null } }));
    return row ? toRecord(row) : null;
  }
}
