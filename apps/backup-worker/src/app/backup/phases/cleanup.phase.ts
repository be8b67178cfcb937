import { CaptureAgentError } from '@sendense/contracts';
import { estimateRequiredBytes, fmtBytes, InsufficientSpace, isEnospc } from '@sendense/storage';
import { CancelledError, PermanentError } from '../../common/errors';
import { logRun, type BackupDeps, type BackupRun } from '../run-context';

/**
 * Phase 6, on any failure or cancel: leave nothing half-done. Exports
 * removed, uncommitted restore points aborted, their rows marked failed or
 * cancelled. Returns the error the job fails with (a full repository is said
 * in words, and not retried).
 */
export async function cleanUpRun(d: BackupDeps, run: BackupRun, err: unknown): Promise<unknown> {
  const failure = (await repositoryFull(run, err)) ?? err;
  const cancelled = failure instanceof CancelledError || (failure instanceof CaptureAgentError && failure.code === 'CANCELLED');
  const message = failure instanceof Error ? failure.message : String(failure);
  const warn = (id: string | null, what: string, e: unknown) =>
    logRun(d, run, 'warn', 'cleanup', `${what}: ${e instanceof Error ? e.message : String(e)}`, {}, id);
  for (const pl of run.plans) {
    if (pl.exportName) {
      const name = pl.exportName;
      await d.exporter.removeExport(name).catch((e: unknown) => warn(pl.backupId ?? null, `could not remove NBD export ${name}`, e));
      pl.exportName = undefined;
    }
    if (!pl.backupId || pl.committed) continue;
    const id = pl.backupId;
    // Not yet committed: abort it. Committed in the repository but not in
    // the database (the transaction failed): delete it, the database never pointed at it.
    await run.repo.abort(id, message).catch(async () => {
      if (await run.repo.find(id)) await run.repo.delete(id).catch((e: unknown) => warn(id, `could not remove restore point ${id}`, e));
    });
    await d.jobs.markEnded(id, cancelled ? 'cancelled' : 'failed', message).catch(() => undefined);
  }
  await logRun(d, run, cancelled ? 'warn' : 'error', 'cleanup', `backup of ${run.vm} ${cancelled ? 'cancelled' : `failed: ${message}`}`);
  return failure;
}

/**
 * The repository ran out of space mid-copy or mid-commit (qemu-nbd's writes
 * answered ENOSPC, or the storage layer said so): a failure in words, with
 * the space the backup needs, that is not retried (a full repository does
 * not empty itself). Null when the failure is something else.
 */
async function repositoryFull(run: BackupRun, err: unknown): Promise<PermanentError | null> {
  if (err instanceof CancelledError || err instanceof PermanentError) return null;
  const space = await run.repo.space().catch(() => null);
  const nearlyFull = space !== null && space.freeBytes < 4 * 1024 * 1024;
  if (!(err instanceof InsufficientSpace) && !isEnospc(err) && !nearlyFull) return null;
  const pending = run.plans.filter((pl) => !pl.committed);
  const needed = pending.reduce(
    (s, pl) =>
      s +
      estimateRequiredBytes({
        vmContextId: pl.disk.vmContextId,
        diskIndex: pl.disk.diskIndex,
        diskKey: String(pl.prepared.deviceKey),
        type: pl.type,
        virtualSize: pl.prepared.capacityBytes,
        expectedBytes: pl.prepared.bytesToCopy,
      }),
    0,
  );
  const disks = pending.map((pl) => `disk ${pl.disk.diskIndex} ${fmtBytes(pl.prepared.bytesToCopy)} to copy`).join(', ');
  const cause = err instanceof Error ? err.message.split('\n')[0] : String(err);
  return new PermanentError(
    `repository ${run.repoRow.name} is full: the backup of ${run.vm} needs ${fmtBytes(needed)} (${disks}, with the reserve kept free), ` +
      `${space ? `${fmtBytes(space.freeBytes)} of ${fmtBytes(space.totalBytes)} free` : 'free space unknown'} when it ran out; ` +
      `the partial restore point is removed; free space or use another repository, then back up again (${cause})`,
    { cause: err },
  );
}
