import type { BackupRepositoryRepository } from '@sendense/db';
import type { RepositoryRegistry } from './repository-registry';

export interface LockSweepLog {
  log(message: string): void;
  warn(message: string): void;
}

/**
 * Removes the lock files (`<repository>/.locks/`) whose process on this host
 * is gone from every repository of this node: a killed backup leaves its
 * restore point's write lock and the disk-writer lock behind, and nothing
 * reads the locks of an aborted point again. The worker runs it at start and
 * every LOCK_SWEEP_EVERY. Returns how many were removed; a repository that
 * cannot be opened is logged and skipped.
 */
export async function sweepNodeLocks(rows: BackupRepositoryRepository, registry: RepositoryRegistry, nodeName: string, log: LockSweepLog): Promise<number> {
  let removed = 0;
  for (const row of (await rows.list()).filter((r) => r.storageNode === nodeName)) {
    try {
      const sweep = await (await registry.get(row)).sweepStaleLocks();
      removed += sweep.removed.length;
      if (sweep.removed.length) {
        log.log(
          `repository ${row.name}: removed ${sweep.removed.length} lock file(s) of dead processes (${sweep.removed.map((r) => `${r.purpose} by pid ${r.pid} since ${r.since}`).join(', ')}); ${sweep.kept} kept`,
        );
      }
    } catch (err) {
      log.warn(`repository ${row.name}: sweeping its stale lock files failed: ${err instanceof Error ? err.message : String(err)} (retried in the next sweep)`);
    }
  }
  return removed;
}
