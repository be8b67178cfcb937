import type { PrismaClient } from '../prisma-client';
import type { AuditLog, Prisma } from '../generated/client';

export type AuditResult = 'ok' | 'error' | 'denied';

export interface NewAuditEntry {
  /** When the request came (default: now). */
  at?: Date;
  keyId: string | null;
  keyName: string | null;
  role: string | null;
  method: string;
  path: string;
  action: string;
  target: string | null;
  /** ok, error (the handler failed), denied (refused by authentication or the role check: 401/403). */
  result: AuditResult;
  status: number;
  error: string | null;
  ip: string | null;
}

export interface AuditRecord extends Omit<NewAuditEntry, 'at'> {
  id: string;
  at: Date;
}

export interface AuditFilter {
  keyId?: string;
  /** Prefix of the action (e.g. "policy." or "POST /api/v1/policies"). */
  action?: string;
  target?: string;
  result?: AuditResult;
  since?: Date;
  until?: Date;
}

function toRecord(r: AuditLog): AuditRecord {
  return {
    id: r.id.toString(),
    at: r.at,
    keyId: r.keyId,
    keyName: r.keyName,
    role: r.role,
    method: r.method,
    path: r.path,
    action: r.action,
    target: r.target,
    result: r.result === 'ok' || r.result === 'denied' ? r.result : 'error',
    status: r.status,
    error: r.error,
    ip: r.ip,
  };
}

/** audit_log: append, query newest first, forget by age. */
export class AuditLogRepository {
  constructor(private readonly prisma: PrismaClient) {}

  async append(e: NewAuditEntry): Promise<void> {
    await this.prisma.auditLog.create({
      data: {
        ...e,
        path: e.path.slice(0, 1024),
        action: e.action.slice(0, 191),
        target: e.target?.slice(0, 255) ?? null,
        error: e.error?.slice(0, 4000) ?? null,
      },
    });
  }

  async page(f: AuditFilter, page: { limit: number; offset: number }): Promise<{ total: number; entries: AuditRecord[] }> {
    const where: Prisma.AuditLogWhereInput = {
      ...(f.keyId ? { keyId: f.keyId } : {}),
      ...(f.action ? { action: { startsWith: f.action } } : {}),
      ...(f.target ? { target: f.target } : {}),
      ...(f.result ? { result: f.result } : {}),
      ...(f.since || f.until ? { at: { ...(f.since ? { gte: f.since } : {}), ...(f.until ? { lt: f.until } : {}) } } : {}),
    };
    const [total, rows] = await Promise.all([
      this.prisma.auditLog.count({ where }),
      this.prisma.auditLog.findMany({ where, orderBy: [{ at: 'desc' }, { id: 'desc' }], take: page.limit, skip: page.offset }),
    ]);
    return { total, entries: rows.map(toRecord) };
  }

  /** Removes entries older than the cut-off; returns how many. */
  async prune(olderThan: Date): Promise<number> {
    return (await this.prisma.auditLog.deleteMany({ where: { at: { lt: olderThan } } })).count;
  }
}
