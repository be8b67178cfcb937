import type { BackupVmJobData, DiskReaderSpec } from '@sendense/contracts';
import type { VmDisk } from '@sendense/db';
import type { LocalFileRepository } from '@sendense/storage';
import { PermanentError } from '../../common/errors';
import { suspectChainReason } from '../cbt-audit';
import { FULL_REASON_TEXT, logRun, resizedReason, type BackupDeps, type BackupRun, type BaseChoice, type PreparedSnapshot } from '../run-context';

/** Phase 1a: the base of each known disk (the restore point its incremental or differential builds on), by device key. */
export async function chooseBases(d: BackupDeps, run: BackupRun): Promise<void> {
  for (const disk of run.ctx.disks) run.bases.set(disk.deviceKey, await chooseBase(d, run.repo, run.data, disk));
}

async function chooseBase(d: BackupDeps, repo: LocalFileRepository, data: BackupVmJobData, disk: VmDisk): Promise<BaseChoice> {
  if (data.requestedType === 'full') return { parentId: null, previousChangeId: null, reason: FULL_REASON_TEXT.requested };
  const chain = await d.chains.find(disk.vmContextId, disk.diskIndex);
  if (!chain) return { parentId: null, previousChangeId: null, reason: FULL_REASON_TEXT['no-previous-change-id'] };
  const baseId = data.requestedType === 'differential' ? chain.fullBackupId : chain.latestBackupId;
  const row = await d.jobs.find(baseId);
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

/**
 * Phase 1b: the VM's snapshot on the Capture Agent, held on a lease from
 * prepare to release. Renewed here; if this worker dies, the agent stops the
 * copy and removes the snapshot by itself. `release()` starts the removal once
 * (right after the copy); `close()` makes sure it happened (at the end, always).
 */
export class SnapshotSession {
  prepared?: PreparedSnapshot;
  private lease?: { stop(): void };
  private released?: Promise<void>;

  constructor(
    private readonly d: BackupDeps,
    private readonly run: BackupRun,
    private readonly password: string,
  ) {}

  /** Snapshot taken and changed areas read; a resized disk is prepared again as a full. */
  async open(): Promise<PreparedSnapshot> {
    const { d, run } = this;
    const started = Date.now();
    let prepared = await this.prepare(new Set());
    // A resized disk cannot take an incremental (the plan phase names the resize as the reason, also when
    // vCenter refused its old changeId): prepare again with that disk full if the agent planned an incremental.
    const resized = prepared.disks.filter(
      (p) =>
        p.mode === 'incremental' &&
        resizedReason(
          run.ctx.disks.find((k) => k.deviceKey === p.deviceKey),
          p,
        ),
    );
    if (resized.length) {
      this.prepared = undefined;
      this.lease?.stop();
      await d.capture.release(prepared.sessionId);
      for (const r of resized) {
        const reason = resizedReason(
          run.ctx.disks.find((k) => k.deviceKey === r.deviceKey),
          r,
        );
        run.bases.set(r.deviceKey, { parentId: null, previousChangeId: null, reason });
      }
      prepared = await this.prepare(new Set(resized.map((r) => r.deviceKey)));
    }
    await logRun(
      d,
      run,
      'info',
      'snapshot',
      `snapshot ${prepared.snapshotMoref} of ${run.vm} created, changed areas read (${((Date.now() - started) / 1000).toFixed(2)} s)`,
      {
        disks: prepared.disks.map((x) => ({ deviceKey: x.deviceKey, mode: x.mode, bytesToCopy: x.bytesToCopy })),
      },
    );
    await this.reportStaleSnapshots(prepared);
    return prepared;
  }

  /** The data is out of the snapshot: remove it (once), so it lives on the VM no longer than needed. */
  release(): void {
    if (this.released || !this.prepared) return;
    const p = this.prepared;
    this.lease?.stop();
    this.released = this.d.capture.release(p.sessionId).then(
      async (r) => {
        if (r.leaseExpired)
          await logRun(
            this.d,
            this.run,
            'warn',
            'cleanup',
            `snapshot ${p.snapshotMoref} of ${this.run.vm} was already removed by the Capture Agent: ${r.leaseExpired}`,
          );
      },
      async (e: unknown) => {
        await logRun(this.d, this.run, 'error', 'cleanup', `could not remove snapshot ${p.snapshotMoref} of ${this.run.vm}: ${String(e)}`);
      },
    );
  }

  /** At the end of the run, whatever happened: the snapshot removed (or its removal awaited), the lease stopped. */
  async close(): Promise<void> {
    this.release();
    await this.released;
    this.lease?.stop();
  }

  private async prepare(forceFull: Set<number>): Promise<PreparedSnapshot> {
    const { ctx, data } = this.run;
    const vc = ctx.vcenter;
    if (!vc) throw new PermanentError(`${this.run.vm} has no vCenter registered`);
    const prepared = await this.d.capture.prepare({
      runId: data.runId,
      vcenter: { url: vc.url, username: vc.username, password: this.password, insecure: vc.insecure, ...(vc.thumbprint ? { thumbprint: vc.thumbprint } : {}) },
      vm: { moref: ctx.vmMoref, ...(ctx.instanceUuid ? { instanceUuid: ctx.instanceUuid } : {}) },
      disks: [...this.run.bases.entries()].map(([deviceKey, b]) => ({ deviceKey, previousChangeId: forceFull.has(deviceKey) ? null : b.previousChangeId })),
      allowEnableCbt: true,
      reader: (vc.diskReader as DiskReaderSpec | null) ?? { kind: 'vddk' },
    });
    this.prepared = prepared;
    this.holdLease(prepared);
    return prepared;
  }

  private holdLease(p: PreparedSnapshot): void {
    this.lease?.stop();
    this.lease = this.d.capture.holdLease(p.sessionId, p.leaseMs, (e) => {
      void logRun(
        this.d,
        this.run,
        'error',
        'copying',
        `the Capture Agent dropped the session of snapshot ${p.snapshotMoref} of ${this.run.vm}: ${e.message}`,
      ).catch(() => undefined);
    });
  }

  private async reportStaleSnapshots(prepared: PreparedSnapshot): Promise<void> {
    for (const st of prepared.staleSnapshots ?? []) {
      await logRun(
        this.d,
        this.run,
        st.removed ? 'warn' : 'error',
        'snapshot',
        st.removed
          ? `removed snapshot ${st.moref} "${st.name}" of ${this.run.vm}: an interrupted backup had left it`
          : `snapshot ${st.moref} "${st.name}" of ${this.run.vm} was left by an interrupted backup and could not be removed (${st.error ?? 'unknown error'}): delete it in vCenter`,
        { ...st },
      );
    }
  }
}
