import { Logger } from '@nestjs/common';
import type {
  CancelResponse,
  CopyDisksRequest,
  CopyTarget,
  RenewResponse,
  DiskCopyResult,
  FullReason,
  PrepareBackupRequest,
  PrepareBackupResponse,
  PreparedDisk,
  ReleaseResponse,
} from '@sendense/contracts';
import { parseNbdUri, totalBytes, type Extent } from '@sendense/nbd';
import { InvalidChangeIdError, NotFoundError, VSphereClient, type MoRef, type SnapshotInfo, type VirtualDiskInfo, type VmInfo } from '@sendense/vsphere';
import { checkTlsPsk } from './tls-psk';
import { CaptureError, invalidArgument, toCaptureError } from './capture-error';
import { CopyProgressReporter, type CopyProgressEvent } from './copy-progress';
import { DiskCopyPool } from './disk-copy';
import { createDiskReader, type DiskReader } from './disk-readers';
import { DEFAULT_LEASE_MS, describeVm, MAX_LEASE_MS, MIN_LEASE_MS, SnapshotSessions, type DiskPlan, type SnapshotSession } from './snapshot-sessions';

export type { CopyProgressEvent } from './copy-progress';

/** Every snapshot the agent takes is named this plus the run id; nothing else may use it. */
export const SNAPSHOT_PREFIX = 'sendense-';

export interface CaptureServiceOptions {
  /** Disks of one VM copied at once unless the request says otherwise (CAPTURE_DISK_PARALLELISM). */
  diskParallelism: number;
  /** The agent-wide permission to turn CBT on (CAPTURE_ALLOW_ENABLE_CBT); the request must allow it too. */
  allowEnableCbt: boolean;
  /** A session's lease unless the prepare request asks for another (CAPTURE_SESSION_LEASE; default 20 s). */
  defaultLeaseMs?: number;
  /** Reconnects a disk copy may make after a dropped NBD connection (CAPTURE_SOURCE_RETRIES; default 5). */
  sourceRetries?: number;
  /** Progress events at most this often during a copy (default 250 ms). */
  progressIntervalMs?: number;
  /** Reader factory (tests replace it). */
  createReader?: (spec: PrepareBackupRequest['reader']) => DiskReader;
  /** vSphere session keep-alive while a snapshot is held (default 5 min). */
  vcenterKeepAliveMs?: number;
}

export interface CopyRunOptions {
  onProgress?: (event: CopyProgressEvent) => void;
}

/** changeId "<uuid>/<sequence>": a new uuid part means change tracking was reset. */
function changeIdEpoch(changeId: string): string {
  const slash = changeId.lastIndexOf('/');
  return slash < 0 ? changeId : changeId.slice(0, slash);
}

/** The plan without its extents (they stay in the agent). */
function toPrepared(plan: DiskPlan): PreparedDisk {
  const prepared: Partial<DiskPlan> = { ...plan };
  delete prepared.extents;
  return prepared as PreparedDisk;
}

/**
 * The Capture Agent's work, without Nest: prepare (CBT, snapshot, changed
 * areas), copy (extents from the snapshot into the target exports), release
 * (remove the snapshot) and cancel.
 */
export class CaptureService {
  private readonly logger = new Logger('CaptureService');
  readonly sessions: SnapshotSessions;

  constructor(private readonly options: CaptureServiceOptions) {
    this.sessions = new SnapshotSessions((s) => this.expire(s));
  }

  /**
   * The session's lease ran out: its caller is gone (a worker killed
   * mid-copy). Stop the copy (its NBD connections close as it unwinds),
   * remove the snapshot, and answer later calls with LEASE_EXPIRED.
   */
  private expire(s: SnapshotSession): void {
    const first = !this.sessions.isExpired(s);
    if (first) {
      this.sessions.markExpired(s);
      const copying = s.copy && !s.copy.abort.signal.aborted;
      this.logger.warn(
        `session ${s.id} (run ${s.runId}, ${describeVm(s)}): nobody renewed its ${s.leaseMs / 1000} s lease, the caller is gone: ` +
          `${copying ? `stopping the copy (at ${s.copy?.last?.type === 'progress' ? `${s.copy.last.bytesDone} of ${s.copy.last.bytesTotal} bytes` : 'its start'}), ` : ''}removing snapshot ${s.snapshot.value}`,
      );
      if (copying) {
        s.copy?.abort.abort(
          new CaptureError('LEASE_EXPIRED', `copy of ${describeVm(s)} (session ${s.id}) stopped: its ${s.leaseMs / 1000} s lease was not renewed`, true),
        );
      }
    }
    this.release(s.id).catch((err: unknown) => {
      this.logger.error(
        `removing snapshot ${s.snapshot.value} of expired session ${s.id} failed: ${err instanceof Error ? err.message : String(err)}; retrying in 60 s`,
      );
      if (this.sessions.find(s.id)) this.sessions.renew(s, 60000);
    });
  }

  // ---------------------------------------------------------------- prepare

  async prepare(req: PrepareBackupRequest): Promise<PrepareBackupResponse> {
    this.validatePrepare(req);
    const reader = (this.options.createReader ?? createDiskReader)(req.reader);
    const client = await this.connectVCenter(req);
    let snapshot: MoRef | undefined;
    let vm: VmInfo | undefined;
    try {
      vm = await this.findVm(client, req);
      const where = describeVm({ vm });
      const cbtEnabledNow = await this.ensureChangeTracking(client, vm, req, where);
      const staleSnapshots = await this.removeStaleSnapshots(client, vm, where);
      snapshot = await this.createSnapshot(client, vm, req, where);
      const plans = await this.planDisks(client, vm, snapshot, req, cbtEnabledNow, where);
      return this.openSession(req, client, reader, vm, snapshot, plans, cbtEnabledNow, staleSnapshots);
    } catch (err) {
      if (snapshot) {
        await client.removeSnapshot(snapshot).catch((e: unknown) => {
          this.logger.error(`removing snapshot ${snapshot?.value} of ${vm?.name} after a failed prepare failed: ${e instanceof Error ? e.message : String(e)}`);
        });
      }
      await client.logout().catch(() => undefined);
      throw err;
    }
  }

  private async connectVCenter(req: PrepareBackupRequest): Promise<VSphereClient> {
    try {
      return await VSphereClient.connect({
        url: req.vcenter.url,
        username: req.vcenter.username,
        password: req.vcenter.password,
        tls: { insecure: req.vcenter.insecure, thumbprint: req.vcenter.thumbprint },
        keepAliveMs: this.options.vcenterKeepAliveMs ?? 5 * 60 * 1000,
      });
    } catch (err) {
      throw toCaptureError(err, `connecting to vCenter ${req.vcenter.url}`);
    }
  }

  /** The VM, which must have disks; disks the request lists but the VM no longer has are only logged. */
  private async findVm(client: VSphereClient, req: PrepareBackupRequest): Promise<VmInfo> {
    const vmSelector = req.vm.moref ? { moref: req.vm.moref } : req.vm.instanceUuid ? { instanceUuid: req.vm.instanceUuid } : { name: req.vm.name as string };
    let vm: VmInfo;
    try {
      vm = await client.findVm(vmSelector);
    } catch (err) {
      throw toCaptureError(err, `finding VM ${JSON.stringify(vmSelector)} on ${req.vcenter.url}`);
    }
    const where = describeVm({ vm });
    // A disk the control plane knows but the VM no longer has was removed
    // from the VM: it is not backed up any more (its chain stays), and that
    // must not stop the VM's other disks from being backed up.
    const gone = req.disks.filter((d) => !vm.disks.some((v) => v.key === d.deviceKey)).map((d) => d.deviceKey);
    if (gone.length) this.logger.warn(`${where} no longer has disk(s) with device key ${gone.join(', ')}; backing up its current disks`);
    if (vm.disks.length === 0) throw invalidArgument(`${where} has no virtual disks`);
    return vm;
  }

  /** Turn CBT on when it is off and both the request and the agent allow it; true when it was turned on now (the backup is full). */
  private async ensureChangeTracking(client: VSphereClient, vm: VmInfo, req: PrepareBackupRequest, where: string): Promise<boolean> {
    if (vm.changeTrackingEnabled) return false;
    if (!req.allowEnableCbt || !this.options.allowEnableCbt) {
      throw new CaptureError(
        'CBT_DISABLED',
        `${where}: changed block tracking is off and enabling it is not allowed (${!req.allowEnableCbt ? 'request' : 'CAPTURE_ALLOW_ENABLE_CBT=false'})`,
      );
    }
    try {
      await client.enableChangeTracking(vm.ref);
    } catch (err) {
      throw toCaptureError(err, `${where}: enabling changed block tracking`);
    }
    this.logger.log(`${where}: changed block tracking enabled; this backup is full`);
    return true;
  }

  private async createSnapshot(client: VSphereClient, vm: VmInfo, req: PrepareBackupRequest, where: string): Promise<MoRef> {
    try {
      return await client.createSnapshot(vm.ref, {
        name: `${SNAPSHOT_PREFIX}${req.runId}`,
        description: `Sendense backup run ${req.runId} (removed when the backup ends)`,
        quiesce: req.quiesce ?? false,
      });
    } catch (err) {
      throw toCaptureError(err, `${where}: creating the snapshot`);
    }
  }

  /** A plan per disk of the snapshot (changeIds as recorded in the snapshot, not the live VM's). */
  private async planDisks(
    client: VSphereClient,
    vm: VmInfo,
    snapshot: MoRef,
    req: PrepareBackupRequest,
    cbtEnabledNow: boolean,
    where: string,
  ): Promise<DiskPlan[]> {
    let snapDisks: VirtualDiskInfo[];
    try {
      snapDisks = await client.getSnapshotDisks(snapshot);
    } catch (err) {
      throw toCaptureError(err, `${where}: reading the disks of snapshot ${snapshot.value}`);
    }
    const plans: DiskPlan[] = [];
    for (const disk of snapDisks) {
      plans.push(await this.planDisk(client, vm, snapshot, disk, req, cbtEnabledNow));
    }
    return plans;
  }

  /** The session that holds the snapshot until release, and prepare's answer. */
  private openSession(
    req: PrepareBackupRequest,
    client: VSphereClient,
    reader: DiskReader,
    vm: VmInfo,
    snapshot: MoRef,
    plans: DiskPlan[],
    cbtEnabledNow: boolean,
    staleSnapshots: NonNullable<PrepareBackupResponse['staleSnapshots']>,
  ): PrepareBackupResponse {
    const leaseMs = req.leaseMs ?? this.options.defaultLeaseMs ?? DEFAULT_LEASE_MS;
    const session = this.sessions.create({
      runId: req.runId,
      vcenter: req.vcenter,
      client,
      vm: { ref: vm.ref, name: vm.name, instanceUuid: vm.instanceUuid ?? null },
      snapshot,
      readerSpec: req.reader,
      reader,
      disks: new Map(plans.map((p) => [p.deviceKey, p])),
      leaseMs,
    });
    this.logger.log(
      `session ${session.id}: ${describeVm({ vm })} snapshot ${snapshot.value}, ` +
        plans.map((p) => `disk ${p.deviceKey} ${p.mode}${p.fullReason ? ` (${p.fullReason})` : ''} ${p.bytesToCopy} bytes`).join(', '),
    );
    return {
      sessionId: session.id,
      snapshotMoref: snapshot.value,
      vmMoref: vm.ref.value,
      vmName: vm.name,
      instanceUuid: vm.instanceUuid ?? null,
      cbtEnabledNow,
      disks: plans.map(toPrepared),
      expiresAt: new Date(session.expiresAt).toISOString(),
      leaseMs,
      ...(staleSnapshots.length ? { staleSnapshots } : {}),
    };
  }

  /**
   * Snapshots a Sendense run left on the VM when its backup was cut short
   * before it could remove them (agent killed, host rebooted). Left alone,
   * they grow delta files on the datastore without bound. One backup per VM
   * runs at a time (the worker's VM lock), so a `sendense-` snapshot that no
   * session of this agent holds belongs to nobody: remove it. A failure is
   * reported, not fatal: this backup can still run.
   */
  private async removeStaleSnapshots(client: VSphereClient, vm: VmInfo, where: string): Promise<NonNullable<PrepareBackupResponse['staleSnapshots']>> {
    let snapshots: SnapshotInfo[];
    try {
      snapshots = await client.listSnapshots(vm.ref);
    } catch (err) {
      this.logger.warn(`${where}: could not list snapshots to look for stale ones: ${err instanceof Error ? err.message : String(err)}`);
      return [];
    }
    const held = new Set(this.sessions.all().map((s) => s.snapshot.value));
    const stale = snapshots.filter((s) => s.name.startsWith(SNAPSHOT_PREFIX) && !held.has(s.ref.value));
    const out: NonNullable<PrepareBackupResponse['staleSnapshots']> = [];
    // Children first: removing a parent merges it into the child anyway, but
    // each removal then stands for exactly one snapshot.
    for (const s of stale.reverse()) {
      const item = { moref: s.ref.value, name: s.name, ...(s.createTime ? { createTime: s.createTime } : {}) };
      try {
        await client.removeSnapshot(s.ref);
        this.logger.warn(`${where}: removed stale snapshot ${s.ref.value} "${s.name}" (${s.createTime ?? 'time unknown'}) left by an interrupted backup`);
        out.push({ ...item, removed: true });
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        this.logger.error(`${where}: could not remove stale snapshot ${s.ref.value} "${s.name}": ${message}`);
        out.push({ ...item, removed: false, error: message });
      }
    }
    return out;
  }

  private validatePrepare(req: PrepareBackupRequest): void {
    if (!req || typeof req !== 'object') throw invalidArgument('prepare needs a request');
    if (typeof req.runId !== 'string' || !req.runId) throw invalidArgument('runId is required');
    const v = req.vcenter;
    if (!v || typeof v.url !== 'string' || typeof v.username !== 'string' || typeof v.password !== 'string') {
      throw invalidArgument('vcenter.url, vcenter.username and vcenter.password are required');
    }
    try {
      const u = new URL(v.url);
      if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error('not http(s)');
    } catch {
      throw invalidArgument(`vcenter.url ${JSON.stringify(v.url)} is not an https:// URL`);
    }
    if (!req.vm || !(req.vm.moref || req.vm.instanceUuid || req.vm.name)) throw invalidArgument('vm needs moref, instanceUuid or name');
    if (!Array.isArray(req.disks)) throw invalidArgument('disks must be an array (may be empty)');
    const seen = new Set<number>();
    for (const d of req.disks) {
      if (!d || !Number.isInteger(d.deviceKey)) throw invalidArgument(`disk entry ${JSON.stringify(d)} needs an integer deviceKey`);
      if (seen.has(d.deviceKey)) throw invalidArgument(`disk ${d.deviceKey} is listed twice`);
      seen.add(d.deviceKey);
      if (d.previousChangeId != null && typeof d.previousChangeId !== 'string')
        throw invalidArgument(`disk ${d.deviceKey}: previousChangeId must be a string or null`);
    }
    if (req.leaseMs !== undefined && (!Number.isInteger(req.leaseMs) || req.leaseMs < MIN_LEASE_MS || req.leaseMs > MAX_LEASE_MS)) {
      throw invalidArgument(`leaseMs must be a whole number of milliseconds from ${MIN_LEASE_MS} to ${MAX_LEASE_MS}`);
    }
  }

  /** Full or incremental for one disk, with its extents. */
  private async planDisk(
    client: VSphereClient,
    vm: VmInfo,
    snapshot: MoRef,
    disk: VirtualDiskInfo,
    req: PrepareBackupRequest,
    cbtEnabledNow: boolean,
  ): Promise<DiskPlan> {
    const where = `VM ${vm.name} (${vm.ref.value}) disk ${disk.key} (${disk.fileName ?? disk.label ?? '?'})`;
    if (!disk.changeId) {
      throw new CaptureError('VCENTER', `${where}: snapshot ${snapshot.value} records no changeId for the disk (change tracking is not active on it)`);
    }
    const asked = req.disks.find((d) => d.deviceKey === disk.key);
    let fullReason: FullReason | undefined;
    let fullReasonDetail: string | undefined;
    if (cbtEnabledNow) fullReason = 'cbt-just-enabled';
    else if (asked?.full) fullReason = 'requested';
    else if (!asked?.previousChangeId) fullReason = 'no-previous-change-id';

    const query = (changeId: string) => client.queryChangedDiskAreas(vm.ref, snapshot, disk.key, changeId, disk.capacityBytes);
    let areas: { start: number; length: number }[] | undefined;
    if (!fullReason && asked?.previousChangeId) {
      const previous = asked.previousChangeId;
      try {
        areas = (await query(previous)).areas;
      } catch (err) {
        if (!(err instanceof InvalidChangeIdError)) throw toCaptureError(err, `${where}: QueryChangedDiskAreas since ${previous}`);
        // A changeId from another tracking epoch means CBT was reset (unclean stop, disk moved, ...).
        fullReason = changeIdEpoch(previous) !== changeIdEpoch(disk.changeId) ? 'cbt-reset' : 'invalid-change-id';
        fullReasonDetail = `QueryChangedDiskAreas refused changeId ${previous}: ${err.faultType}${err.faultText ? `: ${err.faultText}` : ''}`;
        this.logger.warn(`${where}: ${fullReasonDetail}; backing it up in full (${fullReason})`);
      }
    }
    if (!areas) {
      try {
        areas = (await query('*')).areas;
      } catch (err) {
        throw toCaptureError(err, `${where}: QueryChangedDiskAreas "*" (allocated areas)`);
      }
    }
    const extents: Extent[] = areas.filter((a) => a.length > 0).map((a) => ({ offset: a.start, length: a.length }));
    const prepared: PreparedDisk = {
      deviceKey: disk.key,
      label: disk.label ?? `disk ${disk.key}`,
      capacityBytes: disk.capacityBytes,
      fileName: disk.fileName ?? '',
      changeId: disk.changeId,
      mode: fullReason ? 'full' : 'incremental',
      ...(fullReason ? { fullReason } : {}),
      ...(fullReasonDetail ? { fullReasonDetail } : {}),
      bytesToCopy: totalBytes(extents),
      extentCount: extents.length,
    };
    return { ...prepared, extents };
  }

  // ---------------------------------------------------------------- copy

  /**
   * Copy the session's extents into the targets. Progress goes to
   * onProgress at most every progressIntervalMs (and once at the end);
   * resolves with the per-disk results after every target is flushed.
   */
  async copy(req: CopyDisksRequest, run: CopyRunOptions = {}): Promise<DiskCopyResult[]> {
    if (!req || typeof req.sessionId !== 'string') throw invalidArgument('copy needs a sessionId');
    const s = this.sessions.get(req.sessionId);
    if (s.copy) throw invalidArgument(`session ${s.id}: a copy is already running`);
    const targets = this.validateTargets(s, req);
    const parallel = Math.max(1, Math.min(16, Math.floor(req.parallelDisks ?? this.options.diskParallelism) || 1));

    const progress = new CopyProgressReporter(
      targets.map((t) => ({ deviceKey: t.deviceKey, bytesTotal: (s.disks.get(t.deviceKey) as DiskPlan).bytesToCopy })),
      {
        onProgress: run.onProgress,
        onReport: (ev) => {
          if (s.copy) s.copy.last = ev;
        },
      },
    );
    progress.start(this.options.progressIntervalMs ?? 250);
    const pool = new DiskCopyPool({
      session: s,
      tuning: req.tuning,
      audit: req.audit,
      sourceRetries: this.options.sourceRetries ?? 5,
      progress,
      logger: this.logger,
    });
    const work = pool.run(targets, parallel);
    // The lease stays armed while the copy runs: the worker renews it, and a
    // copy whose worker died stops when it runs out.
    s.copy = { abort: pool.abort, done: work };
    progress.report(); // at once: which disks copy and which wait
    try {
      await work;
    } finally {
      progress.stop();
      s.copy = undefined;
      if (this.sessions.find(s.id) === s && !s.releasing && !this.sessions.isExpired(s)) this.sessions.renew(s);
    }
    const results = pool.outcome();
    progress.report();
    this.logger.log(
      `session ${s.id}: copied ${results.map((r) => `disk ${r.deviceKey} ${r.bytesWritten + r.bytesZeroed} bytes in ${r.durationMs} ms`).join(', ')}`,
    );
    return results;
  }

  private validateTargets(s: SnapshotSession, req: CopyDisksRequest): CopyTarget[] {
    if (!Array.isArray(req.targets) || req.targets.length === 0) throw invalidArgument('copy needs at least one target');
    const seen = new Set<number>();
    for (const t of req.targets) {
      if (!t || !s.disks.has(t.deviceKey)) {
        throw invalidArgument(`${describeVm(s)} has no prepared disk ${t?.deviceKey} (prepared: ${[...s.disks.keys()].join(', ')})`);
      }
      if (seen.has(t.deviceKey)) throw invalidArgument(`disk ${t.deviceKey} has two targets`);
      seen.add(t.deviceKey);
      try {
        parseNbdUri(t.uri);
      } catch (err) {
        throw invalidArgument(`disk ${t.deviceKey}: ${err instanceof Error ? err.message : String(err)}`);
      }
      if (t.tlsPsk !== undefined) checkTlsPsk(t.tlsPsk, `disk ${t.deviceKey}`);
    }
    return req.targets.map((t) => ({
      deviceKey: t.deviceKey,
      uri: t.uri,
      ...(t.tlsPsk ? { tlsPsk: { identity: t.tlsPsk.identity, key: t.tlsPsk.key } } : {}),
    }));
  }

  // ---------------------------------------------------------------- cancel / release

  /** Abort the running copy of the session (its copy call fails with CANCELLED). */
  cancel(sessionId: string): CancelResponse {
    const gone = this.sessions.expiredError(sessionId);
    if (gone) throw gone;
    const s = this.sessions.find(sessionId);
    if (!s) return { sessionId, cancelled: false };
    if (!s.releasing) this.sessions.renew(s);
    if (!s.copy || s.copy.abort.signal.aborted) return { sessionId, cancelled: false };
    this.logger.log(`session ${s.id}: copy cancelled`);
    s.copy.abort.abort(new CaptureError('CANCELLED', `copy of ${describeVm(s)} (session ${s.id}) was cancelled`));
    return { sessionId, cancelled: true };
  }

  /** Renew the session's lease (LEASE_EXPIRED when it had run out, NOT_FOUND when unknown). */
  renew(sessionId: string): RenewResponse {
    if (typeof sessionId !== 'string') throw invalidArgument('renew needs a sessionId');
    const s = this.sessions.get(sessionId);
    return { sessionId, expiresAt: new Date(s.expiresAt).toISOString(), leaseMs: s.leaseMs };
  }

  /**
   * Remove the snapshot and forget the session; idempotent. The release of a
   * session whose lease ran out is not an error (the agent removed the
   * snapshot itself): `leaseExpired` says so.
   */
  async release(sessionId: string): Promise<ReleaseResponse> {
    const s = this.sessions.find(sessionId);
    if (!s) {
      const gone = this.sessions.expiredError(sessionId);
      return { sessionId, released: false, ...(gone ? { leaseExpired: gone.message } : {}) };
    }
    s.releasing ??= this.doRelease(s);
    try {
      await s.releasing;
    } catch (err) {
      s.releasing = undefined;
      if (this.sessions.find(s.id)) this.sessions.renew(s, Math.min(s.leaseMs, 60000));
      throw err;
    }
    return { sessionId, released: true };
  }

  private async doRelease(s: SnapshotSession): Promise<void> {
    this.sessions.stopTimer(s);
    if (s.copy) {
      if (!s.copy.abort.signal.aborted) s.copy.abort.abort(new CaptureError('CANCELLED', `session ${s.id} was released during the copy`));
      await s.copy.done.catch(() => undefined);
    }
    try {
      await s.client.removeSnapshot(s.snapshot);
    } catch (err) {
      // Already gone (removed by hand, or an earlier attempt that timed out): released.
      if (!(err instanceof NotFoundError)) throw toCaptureError(err, `${describeVm(s)}: removing snapshot ${s.snapshot.value}`);
    }
    this.sessions.delete(s);
    this.logger.log(`session ${s.id}: snapshot ${s.snapshot.value} of ${describeVm(s)} removed`);
    await s.client.logout().catch(() => undefined);
  }

  /** Release every session (agent shutdown). */
  async releaseAll(): Promise<void> {
    await Promise.all(
      this.sessions.all().map((s) =>
        this.release(s.id).catch((err: unknown) => {
          this.logger.error(`releasing session ${s.id} at shutdown failed: ${err instanceof Error ? err.message : String(err)}`);
        }),
      ),
    );
  }
}
