import { NbdExporterError, type BackupType, type NbdExportInfo } from '@sendense/contracts';
import { InsufficientSpace, StorageError } from '@sendense/storage';
import { PermanentError } from '../../common/errors';
import { exportAccess } from '../../common/target-access';
import { logRun, required, type BackupDeps, type BackupRun } from '../run-context';

/** Storage refusals that pass by themselves (another writer, a merge in progress): retried with backoff. */
const TRANSIENT_STORAGE = new Set(['BACKUP_IN_PROGRESS', 'RESTORE_POINT_BUSY']);

const SHORT_TYPE: Record<BackupType, string> = { full: 'full', incremental: 'incr', differential: 'diff' };

/** Phase 3a: a restore point in state writing for each disk, and its backup_jobs row (status running). */
export async function createRestorePoints(d: BackupDeps, run: BackupRun): Promise<void> {
  const { data, repo } = run;
  const vmName = run.ctx.vmName;
  for (const pl of run.plans) {
    let handle;
    try {
      handle = await repo.createRestorePoint({
        vmContextId: data.vmContextId,
        diskIndex: pl.disk.diskIndex,
        diskKey: String(pl.prepared.deviceKey),
        type: pl.type,
        ...(pl.parentId ? { parentId: pl.parentId } : {}),
        virtualSize: pl.prepared.capacityBytes,
        expectedBytes: pl.prepared.bytesToCopy,
        metadata: { runId: data.runId, vmName, label: pl.prepared.label },
      });
    } catch (err) {
      if (err instanceof InsufficientSpace) throw new PermanentError(`disk ${pl.disk.diskIndex} of ${vmName}: ${err.message}`);
      if (err instanceof StorageError && !TRANSIENT_STORAGE.has(err.code)) {
        throw new PermanentError(`disk ${pl.disk.diskIndex} of ${vmName}: ${err.message}`);
      }
      throw err;
    }
    pl.backupId = handle.id;
    await d.jobs.create({
      id: handle.id,
      vmContextId: data.vmContextId,
      vmName,
      runId: data.runId,
      diskId: pl.disk.diskIndex,
      backupType: pl.type,
      requestedType: data.requestedType,
      fallbackReason: pl.fallbackReason,
      repositoryId: run.repoRow.id,
      repositoryType: 'local',
      repositoryPath: repo.imageKey(handle.record),
      parentBackupId: pl.parentId,
      previousChangeId: pl.previousChangeId,
      totalBytes: pl.prepared.bytesToCopy,
      virtualSizeBytes: pl.prepared.capacityBytes,
      storageNode: d.nodeName,
      queueJobId: data.runId,
    });
    if (pl.fallbackReason) {
      await logRun(d, run, 'warn', 'preparing', `disk ${pl.disk.diskIndex}: running as a full backup because ${pl.fallbackReason}`, {}, handle.id);
    }
  }
}

/** Phase 3b: a writable NBD export of each restore point's image (a Unix socket, or TCP with TLS-PSK unless NBD_TARGET_TLS says none), by device key. */
export async function exportTargets(d: BackupDeps, run: BackupRun): Promise<Map<number, NbdExportInfo>> {
  const out = new Map<number, NbdExportInfo>();
  for (const pl of run.plans) {
    const backupId = required(pl.backupId, `the restore point of disk ${pl.disk.diskIndex}`);
    const target = await run.repo.localTarget(backupId);
    let exp: NbdExportInfo;
    try {
      exp = await d.exporter.createExport({
        vmContextId: run.ctx.contextId,
        diskId: pl.disk.diskIndex,
        type: SHORT_TYPE[pl.type],
        kind: 'qcow2',
        filePath: target.imagePath,
        writable: true,
        backupJobId: backupId,
        // A socket only this host's Capture Agent may open, or TLS-PSK: only the holder of this export's key can.
        ...exportAccess({ tls: d.options.targetTls, transport: d.options.targetTransport }),
      });
    } catch (err) {
      // The exporter refuses the path (outside NBD_ALLOWED_ROOTS, odd characters): a retry would only take another snapshot.
      if (err instanceof NbdExporterError && err.code === 'INVALID_ARGUMENT') {
        throw new PermanentError(`disk ${pl.disk.diskIndex}: the nbd-exporter refuses the backup target: ${err.message}`);
      }
      throw err;
    }
    pl.exportName = exp.name;
    out.set(pl.prepared.deviceKey, exp);
  }
  return out;
}
