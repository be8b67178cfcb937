import type { DiskCopyResult } from '@sendense/contracts';
import { auditFindings } from '../cbt-audit';
import { logRun, required, type BackupDeps, type BackupRun, type BackupRunResult, type CopyResult, type DiskPlan, type PreparedSnapshot } from '../run-context';
import { progressOf } from './copy.phase';

/**
 * Phase 5a: qemu-nbd flushes the image when its export is removed, so the copy
 * is not committed before. An nbd-exporter that is restarting (its servers
 * live on and its reconcile keeps them) is waited for, up to 30 s, rather than
 * failing a copy that is complete.
 */
export async function flushTargets(d: BackupDeps, run: BackupRun): Promise<void> {
  run.ctl.progress(progressOf('committing', run.plans, null));
  const started = Date.now();
  for (const pl of run.plans) {
    if (!pl.exportName) continue;
    const name = pl.exportName;
    const deadline = Date.now() + 30_000;
    for (let attempt = 1; ; attempt++) {
      try {
        await d.exporter.removeExport(name);
        break;
      } catch (err) {
        const unreachable = /ECONNREFUSED|ECONNRESET|socket hang up|timed out/i.test(err instanceof Error ? err.message : String(err));
        if (!unreachable || Date.now() > deadline) throw err;
        if (attempt === 1) {
          await logRun(
            d,
            run,
            'warn',
            'committing',
            `the nbd-exporter does not answer (${err instanceof Error ? err.message : String(err)}); waiting up to 30 s to remove export ${name}`,
            {},
            pl.backupId ?? null,
          );
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    pl.exportName = undefined;
  }
  const seconds = (Date.now() - started) / 1000;
  await logRun(d, run, 'info', 'committing', `targets flushed and exports removed in ${seconds.toFixed(2)} s`, { seconds });
}

/**
 * Phase 5b: disks commit side by side (each is a check and a digest of its own
 * image); their database transactions take turns (no lock contention between
 * them); all settle before a failure is handled, so clean-up never races a
 * commit still running.
 */
export async function commitDisks(d: BackupDeps, run: BackupRun, results: readonly CopyResult[]): Promise<void> {
  let turn: Promise<unknown> = Promise.resolve();
  const inTurn = <T>(fn: () => Promise<T>): Promise<T> => {
    const mine = turn.then(fn);
    turn = mine.catch(() => undefined);
    return mine;
  };
  const outcomes = await Promise.allSettled(
    run.plans.map(async (pl) => {
      const r = results.find((x) => x.deviceKey === pl.prepared.deviceKey);
      if (!r) throw new Error(`the Capture Agent returned no result for disk ${pl.disk.diskIndex} (device key ${pl.prepared.deviceKey}) of ${run.vm}`);
      await commitDisk(d, run, pl, r, inTurn);
    }),
  );
  const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (failed) throw failed.reason;
}

async function commitDisk(
  d: BackupDeps,
  run: BackupRun,
  pl: DiskPlan,
  r: Pick<DiskCopyResult, 'changeId' | 'bytesRead' | 'bytesZeroed' | 'audit'>,
  inTurn: <T>(fn: () => Promise<T>) => Promise<T>,
): Promise<void> {
  const id = required(pl.backupId, `the restore point of disk ${pl.disk.diskIndex}`);
  const audit = auditFindings(r, `disk ${pl.disk.diskIndex}`);
  const rp = await run.repo.commit(id, { changeId: r.changeId, metadata: { bytesTransferred: r.bytesRead, ...audit.metadata } });
  const chain = await run.repo.chain(id);
  await inTurn(() =>
    d.chains.recordCommit({
      backupId: id,
      vmContextId: run.data.vmContextId,
      diskIndex: pl.disk.diskIndex,
      vmDiskId: pl.disk.id,
      changeId: r.changeId,
      bytesTransferred: r.bytesRead,
      bytesSkippedZero: r.bytesZeroed,
      bytesTotal: pl.prepared.bytesToCopy,
      allocatedBytes: rp.allocatedBytes,
      virtualSize: rp.virtualSize,
      checksum: rp.checksum,
      suspectReason: audit.suspectReason,
      ...(r.audit ? { cbtAudit: { ...r.audit } } : {}),
      disk: { capacityBytes: pl.prepared.capacityBytes, label: pl.prepared.label, fileName: pl.prepared.fileName },
      // The chain row is derived from the repository's chain of this point (the
      // same derivation as after maintenance), so it cannot drift.
      chain: chain.restorePoints,
    }),
  );
  // Only now does the database point at it: a failure above leaves the
  // restore point for clean-up to remove, so the two never disagree.
  pl.committed = rp;
  pl.suspectReason = audit.suspectReason;
  if (audit.message) await logRun(d, run, audit.suspectReason ? 'error' : 'info', 'committing', audit.message, { cbtAudit: r.audit }, id);
  await logRun(
    d,
    run,
    'info',
    'committing',
    `disk ${pl.disk.diskIndex}: ${pl.type} restore point ${id} committed`,
    { bytesTransferred: r.bytesRead, allocatedBytes: rp.allocatedBytes },
    id,
  );
}

/** Phase 5c: the VM row says what vCenter said, the repository's space is recorded, and the outcome of each disk. */
export async function finishRun(d: BackupDeps, run: BackupRun, prepared: PreparedSnapshot, results: readonly CopyResult[]): Promise<BackupRunResult> {
  const { ctx, plans } = run;
  await d.vms.recordBackedUp(ctx.contextId, { vmName: prepared.vmName, instanceUuid: prepared.instanceUuid ?? ctx.instanceUuid });
  await recordSpace(d, run);
  await logRun(d, run, 'info', 'done', `backup of ${run.vm} completed`);
  run.ctl.progress(progressOf('done', plans, null));
  return {
    runId: run.data.runId,
    vmContextId: ctx.contextId,
    vmName: prepared.vmName,
    disks: plans.map((pl) => {
      const r = required(
        results.find((x) => x.deviceKey === pl.prepared.deviceKey),
        `the copy result of disk ${pl.disk.diskIndex}`,
      );
      return {
        diskId: pl.disk.diskIndex,
        deviceKey: pl.prepared.deviceKey,
        backupId: required(pl.backupId, `the restore point of disk ${pl.disk.diskIndex}`),
        type: pl.type,
        fallbackReason: pl.fallbackReason,
        bytesTransferred: r.bytesRead,
        bytesZeroed: r.bytesZeroed,
        allocatedBytes: required(pl.committed, `the committed restore point of disk ${pl.disk.diskIndex}`).allocatedBytes,
        changeId: r.changeId,
        suspectReason: pl.suspectReason ?? null,
      };
    }),
  };
}

/** Repositories on other nodes show the space their node last measured. */
async function recordSpace(d: BackupDeps, run: BackupRun): Promise<void> {
  try {
    const s = await run.repo.space();
    await d.repositoryRows.recordSpace(run.repoRow.id, { totalBytes: s.totalBytes, availableBytes: s.freeBytes });
  } catch {
    // informational only
  }
}
