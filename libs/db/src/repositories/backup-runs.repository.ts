import type { PrismaClient } from '../prisma-client';
import { Prisma, type BackupType } from '../generated/client';

/** What the rows of a run say about it (the queue knows more while it is queued or running). */
export type RunRowsState = 'running' | 'completed' | 'failed' | 'cancelled';

/** One VM backup run (every disk), summed over its backup_jobs rows. */
export interface BackupRunSummary {
  runId: string;
  vmContextId: string;
  vmName: string;
  requestedType: BackupType;
  repositoryId: string | null;
  state: RunRowsState;
  /** First disk row created. */
  createdAt: Date;
  startedAt: Date | null;
  /** Last disk ended; null while a disk is pending or running. */
  completedAt: Date | null;
  disks: number;
  bytesTransferred: number;
  totalBytes: number;
  /** An error message of a failed disk. */
  errorMessage: string | null;
}

export interface BackupRunFilter {
  state?: RunRowsState;
  /** VM name or context id. */
  vm?: string;
  /** Only these runs. */
  runIds?: readonly string[];
  /** Runs to leave out (e.g. the ones the queue still holds). */
  excludeRunIds?: readonly string[];
}

interface RawRun {
  run_id: string;
  vm_context_id: string;
  vm_name: string;
  requested_type: BackupType;
  repository_id: string | null;
  state: RunRowsState;
  created_at: Date;
  started_at: Date | null;
  completed_at: Date | null;
  disks: bigint | number;
  bytes_transferred: bigint | number | string;
  total_bytes: bigint | number | string;
  error_message: string | null;
}

/**
 * Backup runs, read from backup_jobs grouped by run_id. A run's state is
 * that of its disks: running while one is pending or running, else failed
 * when one failed, else cancelled when one was cancelled, else completed.
 */
export class BackupRunRepository {
  constructor(private readonly prisma: PrismaClient) {}

  /** Newest first (by the first disk row), with the total over all pages. */
  async page(filter: BackupRunFilter, page: { limit: number; offset: number }): Promise<{ total: number; runs: BackupRunSummary[] }> {
    const grouped = this.grouped(filter);
    const [rows, counted] = await Promise.all([
      this.prisma.$queryRaw<RawRun[]>(Prisma.sql`${grouped} ORDER BY created_at DESC, run_id ASC LIMIT ${page.limit} OFFSET ${page.offset}`),
      this.prisma.$queryRaw<{ n: bigint | number }[]>(Prisma.sql`SELECT COUNT(*) AS n FROM (${grouped}) AS runs`),
    ]);
    return {
      total: Number(counted[0]?.n ?? 0),
      runs: rows.map((r) => ({
        runId: r.run_id,
        vmContextId: r.vm_context_id,
        vmName: r.vm_name,
        requestedType: r.requested_type,
        repositoryId: r.repository_id,
        state: r.state,
        createdAt: r.created_at,
        startedAt: r.started_at,
        completedAt: r.state === 'running' ? null : r.completed_at,
        disks: Number(r.disks),
        bytesTransferred: Number(r.bytes_transferred),
        totalBytes: Number(r.total_bytes),
        errorMessage: r.error_message,
      })),
    };
  }

  private grouped(f: BackupRunFilter): Prisma.Sql {
    const where: Prisma.Sql[] = [];
    if (f.vm) where.push(Prisma.sql`(vm_context_id = ${f.vm} OR vm_name = ${f.vm})`);
    if (f.runIds) where.push(f.runIds.length ? Prisma.sql`run_id IN (${Prisma.join([...f.runIds])})` : Prisma.sql`FALSE`);
    if (f.excludeRunIds?.length) where.push(Prisma.sql`run_id NOT IN (${Prisma.join([...f.excludeRunIds])})`);
    const whereSql = where.length ? Prisma.sql`WHERE ${Prisma.join(where, ' AND ')}` : Prisma.empty;
    const having = f.state ? Prisma.sql`HAVING state = ${f.state}` : Prisma.empty;
    return Prisma.sql`
      SELECT run_id,
        MIN(vm_context_id) AS vm_context_id,
        MIN(vm_name) AS vm_name,
        MIN(requested_type) AS requested_type,
        MIN(repository_id) AS repository_id,
        CASE
          WHEN SUM(status IN ('pending', 'running')) > 0 THEN 'running'
          WHEN SUM(status = 'failed') > 0 THEN 'failed'
          WHEN SUM(status = 'cancelled') > 0 THEN 'cancelled'
          ELSE 'completed'
        END AS state,
        MIN(created_at) AS created_at,
        MIN(started_at) AS started_at,
        MAX(completed_at) AS completed_at,
        COUNT(*) AS disks,
        CAST(SUM(bytes_transferred) AS SIGNED) AS bytes_transferred,
        CAST(SUM(total_bytes) AS SIGNED) AS total_bytes,
        MAX(CASE WHEN status = 'failed' THEN error_message END) AS error_message
      FROM backup_jobs ${whereSql}
      GROUP BY run_id ${having}`;
  }
}
