import type { CopyEvent, DiskCopyProgress } from '@sendense/contracts';
import type { CopyProgress } from '@sendense/nbd';

export type CopyProgressEvent = Extract<CopyEvent, { type: 'progress' }>;

export interface CopyProgressListeners {
  /** The caller's listener; without it nothing is reported. */
  onProgress?: (event: CopyProgressEvent) => void;
  /** Sees every reported event before onProgress (the session keeps the latest for its logs). */
  onReport?: (event: CopyProgressEvent) => void;
}

/**
 * The progress of one copy call: an entry per disk (the disk copies update
 * theirs), summed into events reported on a timer, on demand and never more
 * than the listener can break (its throws are swallowed).
 */
export class CopyProgressReporter {
  private readonly started = Date.now();
  private readonly disks: Map<number, DiskCopyProgress>;
  private ticker: NodeJS.Timeout | undefined;

  constructor(
    disks: { deviceKey: number; bytesTotal: number }[],
    private readonly listeners: CopyProgressListeners,
  ) {
    this.disks = new Map(disks.map((d) => [d.deviceKey, { deviceKey: d.deviceKey, bytesDone: 0, bytesTotal: d.bytesTotal, bytesZeroed: 0, phase: 'waiting' }]));
  }

  /** The live entry of one disk (its copy writes into it). */
  disk(deviceKey: number): DiskCopyProgress {
    return this.disks.get(deviceKey) as DiskCopyProgress;
  }

  event(): CopyProgressEvent {
    const disks = [...this.disks.values()].map((d) => ({ ...d }));
    const bytesDone = disks.reduce((n, d) => n + d.bytesDone, 0);
    const elapsed = Date.now() - this.started;
    return {
      type: 'progress',
      bytesDone,
      bytesTotal: disks.reduce((n, d) => n + d.bytesTotal, 0),
      rateBytesPerSec: elapsed > 0 ? Math.round((bytesDone * 1000) / elapsed) : 0,
      disks,
    };
  }

  report(): void {
    const { onProgress, onReport } = this.listeners;
    if (!onProgress) return;
    const ev = this.event();
    onReport?.(ev);
    try {
      onProgress(ev);
    } catch {
      // a broken listener must not break the copy
    }
  }

  /** Report every intervalMs until stop (the timer does not keep the process alive). */
  start(intervalMs: number): void {
    this.ticker = setInterval(() => this.report(), intervalMs);
    this.ticker.unref();
  }

  stop(): void {
    clearInterval(this.ticker);
  }
}

/** The copier's progress of one disk into its entry: 'flushing' once every byte is written but the copy has not returned. */
export function recordDiskProgress(entry: DiskCopyProgress, p: CopyProgress): void {
  entry.bytesDone = p.bytesWritten + p.bytesZeroed;
  entry.bytesZeroed = p.bytesZeroed;
  if (!p.done && entry.bytesDone >= entry.bytesTotal) entry.phase = 'flushing';
}

/** The copier's result of one disk into its entry (the phase is the caller's: an audit may follow). */
export function recordDiskCopied(entry: DiskCopyProgress, result: CopyProgress): void {
  entry.bytesDone = result.bytesWritten + result.bytesZeroed;
  entry.bytesZeroed = result.bytesZeroed;
}
