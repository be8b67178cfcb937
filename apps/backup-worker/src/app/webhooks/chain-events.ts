import type { BackupVmJobData } from '@sendense/contracts';
import type { BackupRunResult } from '../backup/backup.service';

/** The data of a `chain.suspect` webhook event. */
export interface ChainSuspectEvent {
  vm: { contextId: string; name: string };
  disk: { diskId: number; deviceKey: number };
  backupId: string;
  runId: string;
  repositoryId: string;
  reason: string;
  /** What happens next, for the operator reading the event. */
  next: string;
}

/**
 * One `chain.suspect` event per disk of a completed backup whose restore
 * point the CBT audit marked suspect (backup_jobs.suspect_reason).
 */
export function suspectEvents(job: Pick<BackupVmJobData, 'repositoryId'>, result: BackupRunResult | undefined): ChainSuspectEvent[] {
  if (!result) return [];
  return result.disks
    .filter((d) => d.suspectReason)
    .map((d) => ({
      vm: { contextId: result.vmContextId, name: result.vmName },
      disk: { diskId: d.diskId, deviceKey: d.deviceKey },
      backupId: d.backupId,
      runId: result.runId,
      repositoryId: job.repositoryId,
      reason: d.suspectReason as string,
      next: `the next backup of disk ${d.diskId} of ${result.vmName} will be a full; restore points of this chain from ${d.backupId} on may lack changed blocks`,
    }));
}
