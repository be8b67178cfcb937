import { CaptureAgentError, NbdExporterError } from '@sendense/contracts';
import type {
  BackupType,
  BackupVmJobData,
  DiskCopyResult,
  DiskReaderSpec,
  JobProgress,
  NbdExportInfo,
  PreparedDisk,
} from '@sendense/contracts';
import {
  BackupChainRepository,
  BackupJobRepository,
  BackupRepositoryRepository,
  VmContextRepository,
  VmDiskRepository,
  type BackupRepository as BackupRepositoryRow,
  type PrismaClient,
  type SecretBox,
  type VmContextForBackup,
  type VmDisk,
} from '@sendense/db';
import { estimateRequiredBytes, exposesLocalFiles, fmtBytes, InsufficientSpace, isEnospc, StorageError, type LocalFileRepository, type RestorePoint } from '@sendense/storage';

/** Storage refusals that pass by themselves (another writer, a merge in progress): retried with backoff. */
const TRANSIENT_STORAGE = new Set(['BACKUP_IN_PROGRESS', 'RESTORE_POINT_BUSY']);
import { CancelledError, PermanentError } from '../common/errors';
import type { CaptureAgentPort, NbdExporterPort } from '../common/ports';
import { RepositoryRegistry } from '../repositories/repository-registry';
import { JobEventLog } from './job-event-log';
import type { VmLocks } from './vm-lock';
import { cleanUpInterrupted, type InterruptedRunDeps } from './interrupted-runs';
import { auditFindings, auditRequestFor, suspectChainReason } from './cbt-audit';

export interface BackupControl {
  signal: AbortSignal;
  progress(p: JobProgress): void;
}

export interface DiskOutcome {
  diskId: number;
  deviceKey: number;
  backupId: string;
  type: BackupType;
  fallbackReason: string | null;
  bytesTransferred: number;
  bytesZeroed: number;
  allocatedBytes: number;
  changeId: string;
  /** Set when the CBT audit found blocks CBT reported unchanged that differ: the point (and its chain) is suspect. */
  suspectReason: string | null;
}

export interface BackupRunResult {
  runId: string;
  vmContextId: string;
  vmName: string;
  disks: DiskOutcome[];
}

interface DiskPlan {
  suspectReason?: string | null;
  prepared: PreparedDisk;
  disk: VmDisk;
  type: BackupType;
  parentId: string | null;
  fallbackReason: string | null;
  previousChangeId: string | null;
  backupId?: string;
  exportName?: string;
  committed?: RestorePoint;
}

interface BaseChoice {
  parentId: string | null;
  previousChangeId: string | null;
  /** Why there is no usable base (the disk's backup will be full). */
  reason: string | null;
}

const SHORT_TYPE: Record<BackupType, string> = { full: 'full', incremental: 'incr', differential: 'diff' };

const FULL_REASON_TEXT = {
  requested: 'a full backup was requested',
  'no-previous-change-id': 'there is no earlier backup of this disk to build on',
  'cbt-just-enabled': 'change tracking (CBT) was just enabled on the VM',
  'cbt-reset': 'vCenter reset change tracking (CBT) for this disk',
  'invalid-change-id': 'vCenter no longer accepts the changeId of the previous backup',
} as const;
const fullReasonText = (reason: string): string | undefined => (FULL_REASON_TEXT as Record<string, string>)[reason];

/** A value the backup's earlier phases must have set (a bug otherwise, named by what). */
function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`internal error: ${what} is missing`);
  return value;
}

/**
 * One VM backup: every disk gets a restore point (full, incremental on the
 * previous one, or differential on the full). Nothing points at a restore
 * point until it is committed; on any failure or cancel the half-written
 * restore points, the NBD exports and the snapshot are removed and the
 * previous chain is untouched.
 */
export class BackupService {
  private readonly vms: VmContextRepository;
  private readonly disks: VmDiskRepository;
  private readonly jobs: BackupJobRepository;
  private readonly chains: BackupChainRepository;
  private readonly repositoryRows: BackupRepositoryRepository;

  constructor(
    prisma: PrismaClient,
    private readonly repositories: RepositoryRegistry,
    private readonly exporter: NbdExporterPort & { listExports(q: { backupJobId?: string }): Promise<{ name: string }[]> },
    private readonly capture: CaptureAgentPort,
    private readonly secrets: SecretBox | null,
    private readonly nodeName: string,
    private readonly events: JobEventLog,
    private readonly locks: VmLocks,
    /** targetTls: NBD_TARGET_TLS (psk unless said otherwise: a plain target is writable by any local process). */
    private readonly options: { cbtAuditSamples?: number; targetTls?: 'psk' | 'none' } = {},
  ) {
    this.vms = new VmContextRepository(prisma);
    this.disks = new VmDiskRepository(prisma);
    this.jobs = new BackupJobRepository(prisma);
    this.chains = new BackupChainRepository(prisma);
    this.repositoryRows = new BackupRepositoryRepository(prisma);
  }

  get deps(): InterruptedRunDeps {
    return { jobs: this.jobs, repositories: this.repositories, exporter: this.exporter, events: this.events };
  }

  async run(data: BackupVmJobData, ctl: BackupControl): Promise<BackupRunResult> {
    const ctx = await this.vms.findForBackup(data.vmContextId);
    if (!ctx) throw new PermanentError(`VM context ${data.vmContextId} does not exist (was the VM removed?)`);
    const vm = `VM ${ctx.vmName} (${ctx.contextId})`;
    await this.events.log(data.runId, null, 'info', 'preparing', `${data.requestedType} backup of ${vm} started on node ${this.nodeName}`, {});
    const repoRow = await this.repositoryRows.find(data.repositoryId);
    if (!repoRow) throw new PermanentError(`repository ${data.repositoryId} does not exist`);
    if (!repoRow.enabled) throw new PermanentError(`repository ${repoRow.name} is disabled`);
    if (repoRow.storageNode !== this.nodeName) {
      throw new PermanentError(`repository ${repoRow.name} is served by node ${repoRow.storageNode}, not by this worker's node ${this.nodeName}`);
    }
    const repo = await this.repositories.get(repoRow);
    if (!exposesLocalFiles(repo)) {
      throw new PermanentError(`repository ${repoRow.name} (${repoRow.repositoryType}) cannot expose an image file to the nbd-exporter; backups need such a repository`);
    }
    if (!ctx.vcenter) throw new PermanentError(`${vm} has no vCenter registered`);
    if (!this.secrets) throw new PermanentError('SENDENSE_SECRET_KEY is not set on this worker: the vCenter password cannot be read');
    const unlock = await this.locks.acquire(data.vmContextId, data.runId);
    try {
      // Rows of an earlier attempt of this run belong to a worker that died.
      await cleanUpInterrupted(this.deps, { runId: data.runId }, async () => false);
      if (ctl.signal.aborted) {
        await this.events.log(data.runId, null, 'warn', 'cancelled', `${vm}: cancelled while no worker was running it; not started again`, {});
        throw new CancelledError('cancelled');
      }
      return await this.runLocked(data, ctl, ctx, vm, repoRow, repo);
    } finally {
      await unlock();
    }
  }

  private async runLocked(
    data: BackupVmJobData,
    ctl: BackupControl,
    ctx: VmContextForBackup,
    vm: string,
    repoRow: BackupRepositoryRow,
    repo: LocalFileRepository,
  ): Promise<BackupRunResult> {
    if (!ctx.vcenter || !this.secrets) throw new PermanentError(`${vm} has no usable vCenter credentials`);

    const vcenter = {
      url: ctx.vcenter.url,
      username: ctx.vcenter.username,
      password: this.secrets.open(ctx.vcenter.passwordEnc),
      insecure: ctx.vcenter.insecure,
      ...(ctx.vcenter.thumbprint ? { thumbprint: ctx.vcenter.thumbprint } : {}),
    };
    const reader = (ctx.vcenter.diskReader as DiskReaderSpec | null) ?? { kind: 'vddk' };

    // The base of each known disk, by device key.
    const bases = new Map<number, BaseChoice>();
    for (const d of ctx.disks) bases.set(d.deviceKey, await this.chooseBase(repo, data, d));

    ctl.progress({ phase: 'snapshot', bytesDone: 0, bytesTotal: 0, bytesSkippedZero: 0, rateBytesPerSec: 0, disks: [] });
    const prepareReq = (forceFull: Set<number>) => ({
      runId: data.runId,
      vcenter,
      vm: { moref: ctx.vmMoref, ...(ctx.instanceUuid ? { instanceUuid: ctx.instanceUuid } : {}) },
      disks: [...bases.entries()].map(([deviceKey, b]) => ({
        deviceKey,
        previousChangeId: forceFull.has(deviceKey) ? null : b.previousChangeId,
      })),
      allowEnableCbt: true,
      reader,
    });
    const prepareStarted = Date.now();
    let prepared: Awaited<ReturnType<CaptureAgentPort['prepare']>> | undefined;
    /** The snapshot's removal, once started (right after the copy, else at the end). */
    let released: Promise<void> | undefined;
    // The agent holds the session on a lease from prepare to release: renewed
    // here, it stops the copy and removes the snapshot by itself if this worker dies.
    let lease: { stop(): void } | undefined;
    const holdLease = (p: { sessionId: string; leaseMs: number; snapshotMoref: string }) => {
      lease?.stop();
      lease = this.capture.holdLease(p.sessionId, p.leaseMs, (e) => {
        void this.events.log(data.runId, null, 'error', 'copying', `the Capture Agent dropped the session of snapshot ${p.snapshotMoref} of ${vm}: ${e.message}`, {}).catch(() => undefined);
      });
    };
    const release = (p: { sessionId: string; snapshotMoref: string }): Promise<void> => {
      lease?.stop();
      return this.capture.release(p.sessionId).then(
        async (r) => {
          if (r.leaseExpired) await this.events.log(data.runId, null, 'warn', 'cleanup', `snapshot ${p.snapshotMoref} of ${vm} was already removed by the Capture Agent: ${r.leaseExpired}`, {});
        },
        async (e: unknown) => {
          await this.events.log(data.runId, null, 'error', 'cleanup', `could not remove snapshot ${p.snapshotMoref} of ${vm}: ${String(e)}`, {});
        },
      );
    };
    const plans: DiskPlan[] = [];
    try {
      prepared = await this.capture.prepare(prepareReq(new Set()));
      holdLease(prepared);
      // A resized disk cannot take an incremental: prepare again with that disk full.
      const resized = prepared.disks.filter((p) => {
        const known = ctx.disks.find((d) => d.deviceKey === p.deviceKey);
        return p.mode === 'incremental' && known && Number(known.capacityBytes) !== p.capacityBytes;
      });
      if (resized.length) {
        const first = prepared;
        prepared = undefined;
        lease?.stop();
        await this.capture.release(first.sessionId);
        for (const r of resized) {
          bases.set(r.deviceKey, { parentId: null, previousChangeId: null, reason: 'the disk was resized since the last backup' });
        }
        prepared = await this.capture.prepare(prepareReq(new Set(resized.map((r) => r.deviceKey))));
        holdLease(prepared);
      }
      await this.events.log(data.runId, null, 'info', 'snapshot', `snapshot ${prepared.snapshotMoref} of ${vm} created, changed areas read (${((Date.now() - prepareStarted) / 1000).toFixed(2)} s)`, {
        disks: prepared.disks.map((d) => ({ deviceKey: d.deviceKey, mode: d.mode, bytesToCopy: d.bytesToCopy })),
      });
      for (const st of prepared.staleSnapshots ?? []) {
        await this.events.log(
          data.runId,
          null,
          st.removed ? 'warn' : 'error',
          'snapshot',
          st.removed
            ? `removed snapshot ${st.moref} "${st.name}" of ${vm}: an interrupted backup had left it`
            : `snapshot ${st.moref} "${st.name}" of ${vm} was left by an interrupted backup and could not be removed (${st.error ?? 'unknown error'}): delete it in vCenter`,
          { ...st },
        );
      }
      if (ctl.signal.aborted) throw new CancelledError('cancelled');

      for (const p of prepared.disks) plans.push(await this.planDisk(data, ctx.contextId, ctx.disks, bases, p));
      await this.createRestorePoints(data, ctx.vmName, repo, repoRow.id, plans);
      const exportsByKey = await this.exportTargets(ctx.contextId, repo, plans);

      ctl.progress(this.progressOf('copying', plans, null));
      const copyStarted = Date.now();
      await this.events.log(data.runId, null, 'info', 'copying', `copying ${plans.reduce((s, pl) => s + pl.prepared.bytesToCopy, 0)} bytes of ${plans.length} disk(s)`, {});
      let lastDb = 0;
      let progressWrite: Promise<void> = Promise.resolve();
      // Aborting the signal makes the client send cancel; the copy then fails with CANCELLED.
      const results = await this.capture.copy(
        {
          sessionId: prepared.sessionId,
          targets: plans.map((pl) => {
            const exp = required(exportsByKey.get(pl.prepared.deviceKey), `the NBD export of disk ${pl.disk.diskIndex}`);
            // The key goes to the Capture Agent only (token-protected call); it is never logged or stored.
            return { deviceKey: pl.prepared.deviceKey, uri: exp.uri, ...(exp.tlsPsk ? { tlsPsk: exp.tlsPsk } : {}) };
          }),
          audit: auditRequestFor(repoRow, this.options.cbtAuditSamples ?? 0),
        },
        {
          signal: ctl.signal,
          onProgress: (e) => {
            const p = this.progressOf('copying', plans, e);
            ctl.progress(p);
            if (Date.now() - lastDb > 2000) {
              lastDb = Date.now();
              progressWrite = progressWrite.then(() => this.saveProgress(plans, p));
            }
          },
        },
      );
      // A late progress write must not land on top of the final state.
      await progressWrite;
      if (ctl.signal.aborted) throw new CancelledError('cancelled');
      const copySeconds = (Date.now() - copyStarted) / 1000;
      const copied = results.reduce((s, r) => s + r.bytesRead, 0);
      await this.events.log(data.runId, null, 'info', 'copying', `copied ${copied} bytes in ${copySeconds.toFixed(2)} s (${(copied / 1048576 / Math.max(copySeconds, 0.001)).toFixed(1)} MiB/s)`, {
        seconds: copySeconds,
        bytes: copied,
      });

      // The data is out of the snapshot: remove it now, while the restore
      // points are committed, so it lives on the VM no longer than needed.
      released = release(prepared);
      // qemu-nbd flushes the image when its export is removed.
      ctl.progress(this.progressOf('committing', plans, null));
      const flushStarted = Date.now();
      await this.removeExports(plans, data.runId);
      await this.events.log(data.runId, null, 'info', 'committing', `targets flushed and exports removed in ${((Date.now() - flushStarted) / 1000).toFixed(2)} s`, {
        seconds: (Date.now() - flushStarted) / 1000,
      });
      // Disks commit side by side (each is a check and a digest of its own
      // image); their database transactions take turns (no lock contention
      // between them); all settle before a failure is handled, so clean-up
      // never races a commit still running.
      let turn: Promise<unknown> = Promise.resolve();
      const inTurn = <T>(fn: () => Promise<T>): Promise<T> => {
        const mine = turn.then(fn);
        turn = mine.catch(() => undefined);
        return mine;
      };
      const outcomes = await Promise.allSettled(
        plans.map(async (pl) => {
          const r = results.find((x) => x.deviceKey === pl.prepared.deviceKey);
          if (!r) throw new Error(`the Capture Agent returned no result for disk ${pl.disk.diskIndex} (device key ${pl.prepared.deviceKey}) of ${vm}`);
          await this.commitDisk(data, repo, pl, r, inTurn);
        }),
      );
      const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
      if (failed) throw failed.reason;
      await this.vms.recordBackedUp(ctx.contextId, { vmName: prepared.vmName, instanceUuid: prepared.instanceUuid ?? ctx.instanceUuid });
      await this.recordSpace(repo, repoRow.id);
      await this.events.log(data.runId, null, 'info', 'done', `backup of ${vm} completed`, {});
      ctl.progress(this.progressOf('done', plans, null));
      return {
        runId: data.runId,
        vmContextId: ctx.contextId,
        vmName: prepared.vmName,
        disks: plans.map((pl) => {
          const r = required(results.find((x) => x.deviceKey === pl.prepared.deviceKey), `the copy result of disk ${pl.disk.diskIndex}`);
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
    } catch (err) {
      const failure = (await this.repositoryFull(err, repo, repoRow, plans, vm)) ?? err;
      await this.cleanUp(data, repo, plans, failure, vm);
      throw failure;
    } finally {
      if (!released && prepared) released = release(prepared);
      await released;
      lease?.stop();
    }
  }

  /**
   * The repository ran out of space mid-copy or mid-commit (qemu-nbd's writes
   * answered ENOSPC, or the storage layer said so): a failure in words, with
   * the space the backup needs, that is not retried (a full repository does
   * not empty itself). Null when the failure is something else.
   */
  private async repositoryFull(err: unknown, repo: LocalFileRepository, repoRow: BackupRepositoryRow, plans: DiskPlan[], vm: string): Promise<PermanentError | null> {
    if (err instanceof CancelledError || err instanceof PermanentError) return null;
    const space = await repo.space().catch(() => null);
    const nearlyFull = space !== null && space.freeBytes < 4 * 1024 * 1024;
    if (!(err instanceof InsufficientSpace) && !isEnospc(err) && !nearlyFull) return null;
    const pending = plans.filter((pl) => !pl.committed);
    const needed = pending.reduce(
      (s, pl) => s + estimateRequiredBytes({ vmContextId: pl.disk.vmContextId, diskIndex: pl.disk.diskIndex, diskKey: String(pl.prepared.deviceKey), type: pl.type, virtualSize: pl.prepared.capacityBytes, expectedBytes: pl.prepared.bytesToCopy }),
      0,
    );
    const disks = pending.map((pl) => `disk ${pl.disk.diskIndex} ${fmtBytes(pl.prepared.bytesToCopy)} to copy`).join(', ');
    const cause = err instanceof Error ? err.message.split('\n')[0] : String(err);
    return new PermanentError(
      `repository ${repoRow.name} is full: the backup of ${vm} needs ${fmtBytes(needed)} (${disks}, with the reserve kept free), ` +
        `${space ? `${fmtBytes(space.freeBytes)} of ${fmtBytes(space.totalBytes)} free` : 'free space unknown'} when it ran out; ` +
        `the partial restore point is removed; free space or use another repository, then back up again (${cause})`,
      { cause: err },
    );
  }

  /** Repositories on other nodes show the space their node last measured. */
  private async recordSpace(repo: LocalFileRepository, repositoryId: string): Promise<void> {
    try {
      const s = await repo.space();
      await this.repositoryRows.recordSpace(repositoryId, { totalBytes: s.totalBytes, availableBytes: s.freeBytes });
    } catch {
      // informational only
    }
  }

  private async chooseBase(repo: LocalFileRepository, data: BackupVmJobData, disk: VmDisk): Promise<BaseChoice> {
    if (data.requestedType === 'full') return { parentId: null, previousChangeId: null, reason: FULL_REASON_TEXT.requested };
    const chain = await this.chains.find(disk.vmContextId, disk.diskIndex);
    if (!chain) return { parentId: null, previousChangeId: null, reason: FULL_REASON_TEXT['no-previous-change-id'] };
    const baseId = data.requestedType === 'differential' ? chain.fullBackupId : chain.latestBackupId;
    const row = await this.jobs.find(baseId);
    if (!row || row.status !== 'completed' || !row.changeId) {
      return { parentId: null, previousChangeId: null, reason: `the chain's last restore point ${baseId} is not a completed backup` };
    }
    if (row.repositoryId !== data.repositoryId) {
      return { parentId: null, previousChangeId: null, reason: 'the previous backups of this disk are in another repository' };
    }
    if (!(await repo.find(baseId))) {
      return { parentId: null, previousChangeId: null, reason: `the chain is broken: restore point ${baseId} is missing from the repository` };
    }
    const suspect = await suspectChainReason(repo, baseId);
    if (suspect) return { parentId: null, previousChangeId: null, reason: suspect };
    return { parentId: baseId, previousChangeId: row.changeId, reason: null };
  }

  private async planDisk(
    data: BackupVmJobData,
    vmContextId: string,
    known: VmDisk[],
    bases: Map<number, BaseChoice>,
    p: PreparedDisk,
  ): Promise<DiskPlan> {
    let disk = known.find((d) => d.deviceKey === p.deviceKey);
    if (!disk) {
      // A disk added to the VM since the last backup.
      disk = await this.disks.add(vmContextId, { deviceKey: p.deviceKey, label: p.label, capacityBytes: p.capacityBytes, fileName: p.fileName });
      known.push(disk);
    }
    const base = bases.get(p.deviceKey) ?? { parentId: null, previousChangeId: null, reason: 'the disk is new' };
    if (p.mode === 'incremental' && base.parentId) {
      return { prepared: p, disk, type: data.requestedType, parentId: base.parentId, fallbackReason: null, previousChangeId: base.previousChangeId };
    }
    const reason =
      data.requestedType === 'full'
        ? null
        : p.fullReason && p.fullReason !== 'no-previous-change-id' && p.fullReason !== 'requested'
          ? `${fullReasonText(p.fullReason) ?? p.fullReason}${p.fullReasonDetail ? ` (${p.fullReasonDetail})` : ''}`
          : (base.reason ?? FULL_REASON_TEXT['no-previous-change-id']);
    return { prepared: p, disk, type: 'full', parentId: null, fallbackReason: reason, previousChangeId: null };
  }

  private async createRestorePoints(data: BackupVmJobData, vmName: string, repo: LocalFileRepository, repositoryId: string, plans: DiskPlan[]) {
    for (const pl of plans) {
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
      await this.jobs.create({
        id: handle.id,
        vmContextId: data.vmContextId,
        vmName,
        runId: data.runId,
        diskId: pl.disk.diskIndex,
        backupType: pl.type,
        requestedType: data.requestedType,
        fallbackReason: pl.fallbackReason,
        repositoryId,
        repositoryType: 'local',
        repositoryPath: repo.imageKey(handle.record),
        parentBackupId: pl.parentId,
        previousChangeId: pl.previousChangeId,
        totalBytes: pl.prepared.bytesToCopy,
        virtualSizeBytes: pl.prepared.capacityBytes,
        storageNode: this.nodeName,
        queueJobId: data.runId,
      });
      if (pl.fallbackReason) {
        await this.events.log(data.runId, handle.id, 'warn', 'preparing', `disk ${pl.disk.diskIndex}: running as a full backup because ${pl.fallbackReason}`, {});
      }
    }
  }

  private async exportTargets(vmContextId: string, repo: LocalFileRepository, plans: DiskPlan[]): Promise<Map<number, NbdExportInfo>> {
    const out = new Map<number, NbdExportInfo>();
    for (const pl of plans) {
      const target = await repo.localTarget(required(pl.backupId, `the restore point of disk ${pl.disk.diskIndex}`));
      let exp: NbdExportInfo;
      try {
        exp = await this.exporter.createExport({
          vmContextId,
          diskId: pl.disk.diskIndex,
          type: SHORT_TYPE[pl.type],
          kind: 'qcow2',
          filePath: target.imagePath,
          writable: true,
          backupJobId: required(pl.backupId, `the restore point of disk ${pl.disk.diskIndex}`),
          // TLS-PSK: only the holder of this export's key (the Capture Agent this job hands it to) can open it.
          tls: this.options.targetTls ?? 'psk',
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

  /**
   * qemu-nbd flushes the image when its export is removed, so the copy is not
   * committed before. An nbd-exporter that is restarting (its servers live on
   * and its reconcile keeps them) is waited for, up to 30 s, rather than
   * failing a copy that is complete.
   */
  private async removeExports(plans: DiskPlan[], runId?: string): Promise<void> {
    for (const pl of plans) {
      if (!pl.exportName) continue;
      const name = pl.exportName;
      const deadline = Date.now() + 30_000;
      for (let attempt = 1; ; attempt++) {
        try {
          await this.exporter.removeExport(name);
          break;
        } catch (err) {
          const unreachable = /ECONNREFUSED|ECONNRESET|socket hang up|timed out/i.test(err instanceof Error ? err.message : String(err));
          if (!unreachable || Date.now() > deadline) throw err;
          if (attempt === 1 && runId) {
            await this.events.log(runId, pl.backupId ?? null, 'warn', 'committing', `the nbd-exporter does not answer (${err instanceof Error ? err.message : String(err)}); waiting up to 30 s to remove export ${name}`, {});
          }
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
      pl.exportName = undefined;
    }
  }

  private async commitDisk(
    data: BackupVmJobData,
    repo: LocalFileRepository,
    pl: DiskPlan,
    r: Pick<DiskCopyResult, 'changeId' | 'bytesRead' | 'bytesZeroed' | 'audit'>,
    inTurn: <T>(fn: () => Promise<T>) => Promise<T> = (fn) => fn(),
  ) {
    const id = required(pl.backupId, `the restore point of disk ${pl.disk.diskIndex}`);
    const audit = auditFindings(r, `disk ${pl.disk.diskIndex}`);
    const rp = await repo.commit(id, { changeId: r.changeId, metadata: { bytesTransferred: r.bytesRead, ...audit.metadata } });
    const chain = await repo.chain(id);
    await inTurn(() =>
      this.chains.recordCommit({
        backupId: id,
        vmContextId: data.vmContextId,
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
    // restore point for cleanUp to remove, so the two never disagree.
    pl.committed = rp;
    pl.suspectReason = audit.suspectReason;
    if (audit.message) await this.events.log(data.runId, id, audit.suspectReason ? 'error' : 'info', 'committing', audit.message, { cbtAudit: r.audit });
    await this.events.log(data.runId, id, 'info', 'committing', `disk ${pl.disk.diskIndex}: ${pl.type} restore point ${id} committed`, {
      bytesTransferred: r.bytesRead,
      allocatedBytes: rp.allocatedBytes,
    });
  }

  /** Leave nothing half-done: exports removed, uncommitted restore points aborted, rows marked. */
  private async cleanUp(data: BackupVmJobData, repo: LocalFileRepository, plans: DiskPlan[], err: unknown, vm: string) {
    const cancelled = err instanceof CancelledError || (err instanceof CaptureAgentError && err.code === 'CANCELLED');
    const message = err instanceof Error ? err.message : String(err);
    const warn = (id: string | null, what: string, e: unknown) =>
      this.events.log(data.runId, id, 'warn', 'cleanup', `${what}: ${e instanceof Error ? e.message : String(e)}`, {});
    for (const pl of plans) {
      if (pl.exportName) {
        const name = pl.exportName;
        await this.exporter.removeExport(name).catch((e: unknown) => warn(pl.backupId ?? null, `could not remove NBD export ${name}`, e));
        pl.exportName = undefined;
      }
      if (!pl.backupId || pl.committed) continue;
      const id = pl.backupId;
      // Not yet committed: abort it. Committed in the repository but not in
      // the database (the transaction failed): delete it, the database never pointed at it.
      await repo.abort(id, message).catch(async () => {
        if (await repo.find(id)) await repo.delete(id).catch((e: unknown) => warn(id, `could not remove restore point ${id}`, e));
      });
      await this.jobs.markEnded(id, cancelled ? 'cancelled' : 'failed', message).catch(() => undefined);
    }
    await this.events.log(data.runId, null, cancelled ? 'warn' : 'error', 'cleanup', `backup of ${vm} ${cancelled ? 'cancelled' : `failed: ${message}`}`, {});
  }

  private progressOf(phase: JobProgress['phase'], plans: DiskPlan[], e: { bytesDone: number; bytesTotal: number; rateBytesPerSec: number; disks: { deviceKey: number; bytesDone: number; bytesTotal: number; bytesZeroed: number; phase: string }[] } | null): JobProgress {
    const total = plans.reduce((s, pl) => s + pl.prepared.bytesToCopy, 0);
    // After the copy (committing, done) every disk's bytes are in, whether or
    // not a copy progress event said so before the copy ended.
    const copied = phase === 'done' || phase === 'committing';
    return {
      phase,
      bytesDone: e?.bytesDone ?? (copied ? total : 0),
      bytesTotal: e?.bytesTotal ?? total,
      bytesSkippedZero: e ? e.disks.reduce((s, d) => s + d.bytesZeroed, 0) : 0,
      rateBytesPerSec: e?.rateBytesPerSec ?? 0,
      disks: plans.map((pl) => {
        const d = e?.disks.find((x) => x.deviceKey === pl.prepared.deviceKey);
        return { diskId: pl.disk.diskIndex, bytesDone: d?.bytesDone ?? (copied ? pl.prepared.bytesToCopy : 0), bytesTotal: d?.bytesTotal ?? pl.prepared.bytesToCopy, phase: d?.phase ?? phase };
      }),
    };
  }

  private async saveProgress(plans: DiskPlan[], p: JobProgress): Promise<void> {
    for (const pl of plans) {
      if (!pl.backupId) continue;
      const d = p.disks.find((x) => x.diskId === pl.disk.diskIndex);
      await this.jobs.saveProgress(pl.backupId, { phase: p.phase, bytesDone: d?.bytesDone ?? 0, bytesTotal: d?.bytesTotal ?? 0 }).catch(() => undefined);
    }
  }
}

