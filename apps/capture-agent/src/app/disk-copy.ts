import type { Logger } from '@nestjs/common';
import type { CbtAuditRequest, CbtAuditResult, CopyDisksRequest, CopyTarget, DiskCopyProgress, DiskCopyResult } from '@sendense/contracts';
import { copyExtents, DEFAULT_CONNECTIONS, NbdClient, type CopyProgress } from '@sendense/nbd';
import { runCbtAudit } from './cbt-audit';
import { CaptureError, invalidArgument, toCaptureError } from './capture-error';
import { recordDiskCopied, recordDiskProgress, type CopyProgressReporter } from './copy-progress';
import type { OpenedDisk } from './disk-readers';
import { describeVm, type DiskPlan, type SnapshotSession } from './snapshot-sessions';

export interface DiskCopyOptions {
  session: SnapshotSession;
  tuning?: CopyDisksRequest['tuning'];
  audit?: CopyDisksRequest['audit'];
  /** Reconnects the copier may make after a dropped NBD connection. */
  sourceRetries: number;
  progress: CopyProgressReporter;
  logger: Logger;
}

/**
 * The disks of one copy call, each from its snapshot disk (the session's
 * reader) into its target export, `parallel` at a time. The first disk that
 * fails stops the others: the backup fails as a whole.
 */
export class DiskCopyPool {
  readonly abort = new AbortController();
  private readonly results: DiskCopyResult[] = [];
  private firstError: CaptureError | undefined;

  constructor(private readonly o: DiskCopyOptions) {}

  /**
   * Start the workers. The first disks are already 'copying' when this
   * returns; the promise settles when every disk has stopped and never
   * rejects (see outcome).
   */
  run(targets: CopyTarget[], parallel: number): Promise<void> {
    const queue = [...targets];
    return (async () => {
      await Promise.all(
        Array.from({ length: Math.min(parallel, queue.length) }, async () => {
          for (let t = queue.shift(); t; t = queue.shift()) await this.copyOne(t);
        }),
      );
    })();
  }

  /** After run settled: the per-disk results by device key, or the copy's error. */
  outcome(): DiskCopyResult[] {
    if (this.firstError) {
      // A cancel (or the lease running out) shows as such even when a disk saw it first as an abort.
      const reason: unknown = this.abort.signal.reason;
      if (reason instanceof CaptureError && (reason.code === 'CANCELLED' || reason.code === 'LEASE_EXPIRED')) throw reason;
      throw this.firstError;
    }
    return this.results.sort((a, b) => a.deviceKey - b.deviceKey);
  }

  private async copyOne(t: CopyTarget): Promise<void> {
    const s = this.o.session;
    const signal = this.abort.signal;
    const plan = s.disks.get(t.deviceKey) as DiskPlan;
    const st = this.o.progress.disk(t.deviceKey);
    const where = `${describeVm(s)} disk ${plan.deviceKey} (${plan.fileName || plan.label}), snapshot ${s.snapshot.value}`;
    const diskStarted = Date.now();
    let opened: OpenedDisk | undefined;
    let target: NbdClient | undefined;
    try {
      signal.throwIfAborted();
      st.phase = 'copying';
      opened = await this.openSource(plan, where);
      signal.throwIfAborted();
      target = await this.connectTarget(t, where);
      checkTarget(target, t, plan, where);
      const result = await this.transfer(opened, target, t, plan, st, where);
      const audit = this.o.audit?.samples && plan.mode === 'incremental' ? await this.audit(opened, target, plan, this.o.audit, where) : undefined;
      st.phase = 'done';
      this.results.push({
        deviceKey: plan.deviceKey,
        changeId: plan.changeId,
        bytesRead: result.bytesRead,
        bytesWritten: result.bytesWritten,
        bytesZeroed: result.bytesZeroed,
        extentCount: plan.extentCount,
        durationMs: Date.now() - diskStarted,
        ...(audit ? { audit } : {}),
      });
    } catch (err) {
      st.phase = 'failed';
      this.fail(toCaptureError(err));
    } finally {
      await target?.close().catch(() => undefined);
      await opened?.close().catch(() => undefined);
    }
  }

  private fail(ce: CaptureError): void {
    if (this.firstError) return;
    this.firstError = ce;
    if (!this.abort.signal.aborted) this.abort.abort(ce);
  }

  private async openSource(plan: DiskPlan, where: string): Promise<OpenedDisk> {
    const s = this.o.session;
    try {
      return await s.reader.open({
        vcenter: s.vcenter,
        vmMoref: s.vm.ref.value,
        vmName: s.vm.name,
        snapshotMoref: s.snapshot.value,
        deviceKey: plan.deviceKey,
        fileName: plan.fileName,
      });
    } catch (err) {
      throw toCaptureError(err, `${where}: opening the snapshot disk`);
    }
  }

  private async connectTarget(t: CopyTarget, where: string): Promise<NbdClient> {
    try {
      return await NbdClient.connect({
        uri: t.uri,
        connections: this.o.tuning?.connections ?? DEFAULT_CONNECTIONS,
        ...(t.tlsPsk ? { tlsPsk: t.tlsPsk } : {}),
      });
    } catch (err) {
      throw toCaptureError(err, `${where}: connecting to the target ${t.uri}`);
    }
  }

  /** copyExtents of the disk's extents, reconnecting to a source that drops (sourceRetries times). */
  private async transfer(opened: OpenedDisk, target: NbdClient, t: CopyTarget, plan: DiskPlan, st: DiskCopyProgress, where: string): Promise<CopyProgress> {
    const tuning = this.o.tuning;
    let result: CopyProgress;
    try {
      result = await copyExtents({
        source: opened.uri,
        target,
        extents: plan.extents,
        requestSize: tuning?.requestSize,
        queueDepth: tuning?.queueDepth,
        connections: tuning?.connections,
        signal: this.abort.signal,
        retry: { attempts: this.o.sourceRetries },
        progressIntervalMs: 100,
        onProgress: (p) => recordDiskProgress(st, p),
      });
    } catch (err) {
      throw toCaptureError(err, `${where}: copy from ${opened.describe} to ${t.uri}`);
    }
    recordDiskCopied(st, result);
    if (result.retries) {
      this.o.logger.warn(
        `${where}: the copy from ${opened.describe} reconnected ${result.retries} time(s) after a dropped NBD connection and resumed where it was; ${result.bytesRead} bytes read`,
      );
    }
    return result;
  }

  /** The CBT audit of a copied incremental (the request asked for samples). */
  private audit(opened: OpenedDisk, target: NbdClient, plan: DiskPlan, request: CbtAuditRequest, where: string): Promise<CbtAuditResult | undefined> {
    return runCbtAudit({
      sourceUri: opened.uri,
      target,
      changed: plan.extents,
      capacityBytes: plan.capacityBytes,
      request,
      signal: this.abort.signal,
      where,
    });
  }
}

function checkTarget(target: NbdClient, t: CopyTarget, plan: DiskPlan, where: string): void {
  // A short target would silently cut a full at its last allocated extent.
  if (target.size < plan.capacityBytes) {
    throw invalidArgument(`${where}: target ${t.uri} holds ${target.size} bytes, the disk ${plan.capacityBytes}`);
  }
  if (target.readOnly) throw invalidArgument(`${where}: target ${t.uri} is read-only`);
}
