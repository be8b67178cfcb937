import type { JobProgress, NbdExportInfo } from '@sendense/contracts';
import { CancelledError } from '../../common/errors';
import { auditRequestFor } from '../cbt-audit';
import { logRun, required, type BackupDeps, type BackupRun, type CopyResult, type DiskPlan, type PreparedSnapshot } from '../run-context';

type CopyEvent = {
  bytesDone: number;
  bytesTotal: number;
  rateBytesPerSec: number;
  disks: { deviceKey: number; bytesDone: number; bytesTotal: number; bytesZeroed: number; phase: string }[];
};

/**
 * Phase 4: the Capture Agent copies every disk of the snapshot into its
 * export. Progress goes to the queue at once and to the rows every 2 s.
 * Aborting the signal makes the client send cancel; the copy then fails with CANCELLED.
 */
export async function copyDisks(d: BackupDeps, run: BackupRun, prepared: PreparedSnapshot, exportsByKey: Map<number, NbdExportInfo>): Promise<CopyResult[]> {
  const { ctl, plans } = run;
  ctl.progress(progressOf('copying', plans, null));
  const started = Date.now();
  await logRun(d, run, 'info', 'copying', `copying ${plans.reduce((s, pl) => s + pl.prepared.bytesToCopy, 0)} bytes of ${plans.length} disk(s)`);
  let lastDb = 0;
  let progressWrite: Promise<void> = Promise.resolve();
  const results = await d.capture.copy(
    {
      sessionId: prepared.sessionId,
      targets: plans.map((pl) => {
        const exp = required(exportsByKey.get(pl.prepared.deviceKey), `the NBD export of disk ${pl.disk.diskIndex}`);
        // The key goes to the Capture Agent only (token-protected call); it is never logged or stored.
        return { deviceKey: pl.prepared.deviceKey, uri: exp.uri, ...(exp.tlsPsk ? { tlsPsk: exp.tlsPsk } : {}) };
      }),
      audit: auditRequestFor(run.repoRow, d.options.cbtAuditSamples ?? 0),
    },
    {
      signal: ctl.signal,
      onProgress: (e) => {
        const p = progressOf('copying', plans, e);
        ctl.progress(p);
        if (Date.now() - lastDb > 2000) {
          lastDb = Date.now();
          progressWrite = progressWrite.then(() => saveProgress(d, plans, p));
        }
      },
    },
  );
  // A late progress write must not land on top of the final state.
  await progressWrite;
  if (ctl.signal.aborted) throw new CancelledError('cancelled');
  const seconds = (Date.now() - started) / 1000;
  const copied = results.reduce((s, r) => s + r.bytesRead, 0);
  await logRun(
    d,
    run,
    'info',
    'copying',
    `copied ${copied} bytes in ${seconds.toFixed(2)} s (${(copied / 1048576 / Math.max(seconds, 0.001)).toFixed(1)} MiB/s)`,
    { seconds, bytes: copied },
  );
  return results;
}

/** The run's progress as the queue shows it. */
export function progressOf(phase: JobProgress['phase'], plans: DiskPlan[], e: CopyEvent | null): JobProgress {
  const total = plans.reduce((s, pl) => s + pl.prepared.bytesToCopy, 0);
  // After the copy (committing, done) every disk's bytes are in, whether or
  // not a copy progress event said so before the copy ended.
  const copied = phase === 'done' || phase === 'committing';
  return {
    phase,
    bytesDone: e?.bytesDone ?? (copied ? total : 0),
    bytesTotal: e?.bytesTotal ?? total,
    bytesSkippedZero: e ? e.disks.reduce((s, x) => s + x.bytesZeroed, 0) : 0,
    rateBytesPerSec: e?.rateBytesPerSec ?? 0,
    disks: plans.map((pl) => {
      const x = e?.disks.find((y) => y.deviceKey === pl.prepared.deviceKey);
      return {
        diskId: pl.disk.diskIndex,
        bytesDone: x?.bytesDone ?? (copied ? pl.prepared.bytesToCopy : 0),
        bytesTotal: x?.bytesTotal ?? pl.prepared.bytesToCopy,
        phase: x?.phase ?? phase,
      };
    }),
  };
}

async function saveProgress(d: BackupDeps, plans: DiskPlan[], p: JobProgress): Promise<void> {
  for (const pl of plans) {
    if (!pl.backupId) continue;
    const x = p.disks.find((y) => y.diskId === pl.disk.diskIndex);
    await d.jobs.saveProgress(pl.backupId, { phase: p.phase, bytesDone: x?.bytesDone ?? 0, bytesTotal: x?.bytesTotal ?? 0 }).catch(() => undefined);
  }
}
