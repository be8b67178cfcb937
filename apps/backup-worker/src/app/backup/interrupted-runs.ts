import type { BackupJobRepository } from '@sendense/db';
import type { NbdExporterPort } from '../common/ports';
import type { RepositoryRegistry } from '../repositories/repository-registry';
import type { JobEventLog } from './job-event-log';
import type { VmLocks } from './vm-lock';

type Exporter = NbdExporterPort & { listExports(q: { backupJobId?: string }): Promise<{ name: string }[]> };

export interface InterruptedRunDeps {
  jobs: BackupJobRepository;
  repositories: RepositoryRegistry;
  exporter: Exporter;
  events: JobEventLog;
}

/**
 * Backups a dead worker left behind (SIGKILL, OOM, power loss): their NBD
 * exports are removed, their half-written restore points removed, their rows
 * marked failed. Two callers: the worker at start (rows of this node whose VM
 * lock no live worker holds) and a run at its start (rows of an earlier
 * attempt of the same run, which is certainly dead since this attempt runs).
 */
export async function cleanUpInterrupted(
  deps: InterruptedRunDeps,
  where: { runId?: string; storageNode?: string },
  skip: (row: { runId: string; vmContextId: string }) => Promise<boolean>,
): Promise<number> {
  const { jobs, repositories, exporter, events } = deps;
  const rows = await jobs.running(where);
  let cleaned = 0;
  for (const row of rows) {
    if (await skip(row)) continue;
    cleaned++;
    for (const e of await exporter.listExports({ backupJobId: row.id }).catch(() => [])) {
      await exporter.removeExport(e.name).catch(() => undefined);
    }
    if (row.repository) {
      const repo = await repositories.get(row.repository).catch(() => null);
      const points = repo ? await repo.list({ vmContextId: row.vmContextId, diskIndex: row.diskId, includeWriting: true }).catch(() => []) : [];
      if (repo && points.some((p) => p.id === row.id && p.state === 'writing')) await repo.abort(row.id, 'interrupted').catch(() => undefined);
    }
    await jobs.markEnded(row.id, 'failed', 'the worker stopped during this backup; its partial restore point was removed');
    await events.log(row.runId, row.id, 'warn', 'cleanup', `disk ${row.diskId}: interrupted by a worker stop, cleaned up`, {});
  }
  return cleaned;
}

/** At worker start: this node's running rows that no live worker holds. */
export function cleanUpAtStart(deps: InterruptedRunDeps, locks: VmLocks, nodeName: string): Promise<number> {
  return cleanUpInterrupted(deps, { storageNode: nodeName }, async (row) => (await locks.holder(row.vmContextId)) === row.runId);
}
