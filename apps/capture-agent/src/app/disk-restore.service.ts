import { Logger } from '@nestjs/common';
import type { DiskWriterSpec, RestoreDiskEvent, RestoreDiskRequest, RestoreDiskResult, VCenterCredentials } from '@sendense/contracts';
import { copyExtents, NbdClient, totalBytes, type CopyProgress, type Extent } from '@sendense/nbd';
import { HarnessClient, InvalidChangeIdError, VSphereClient, type MoRef, type VirtualDiskInfo, type VmInfo } from '@sendense/vsphere';
import { CaptureError, invalidArgument, toCaptureError } from './capture-error';
import { checkTlsPsk } from './tls-psk';
import { SNAPSHOT_PREFIX } from './capture.service';
import { openVddkWriter } from './disk-readers';

const ID_RE = /^[A-Za-z0-9_.:-]{1,128}$/;

export type RestoreProgressEvent = Extract<RestoreDiskEvent, { type: 'progress' }>;

/** Where the VM's disk is written. */
export interface DiskTarget {
  uri: string;
  close(): Promise<void>;
}

export type DiskTargetOpener = (spec: DiskWriterSpec, vm: VmInfo, deviceKey: number, vcenter: VCenterCredentials) => Promise<DiskTarget>;

/**
 * Where a restore writes: real vCenter through `nbdkit vddk` on the VM's disk
 * (writable, no snapshot); the stand-in serves every VM disk writable as
 * `live` (what a hypervisor's disk is to VDDK).
 */
export const openDiskTarget: DiskTargetOpener = async (spec, vm, deviceKey, vcenter) => {
  if (spec.kind === 'vddk') {
    const disk = vm.disks.find((d) => d.key === deviceKey);
    if (!disk?.fileName) throw new CaptureError('NOT_FOUND', `VM ${vm.name} reports no backing file for disk ${deviceKey}; nbdkit vddk needs it`);
    return openVddkWriter(
      { libdir: spec.libdir, transports: spec.transports },
      { vcenter, vmMoref: vm.ref.value, vmName: vm.name, deviceKey, fileName: disk.fileName },
    );
  }
  if (spec.kind !== 'standin-nbd') throw invalidArgument(`unknown disk writer ${JSON.stringify((spec as { kind?: unknown }).kind)}`);
  const harness = new HarnessClient(spec.harnessUrl.replace(/\/+$/, ''));
  try {
    const found = await harness.vm(vm.ref.value);
    const disk = found.disks.find((d) => d.key === deviceKey);
    if (!disk) throw new CaptureError('NOT_FOUND', `the stand-in has no disk ${deviceKey} on VM ${vm.name}`);
    return { uri: disk.liveUri, close: () => harness.close() };
  } catch (err) {
    await harness.close();
    throw err;
  }
};

export interface DiskRestoreOptions {
  progressIntervalMs?: number;
  openTarget?: DiskTargetOpener;
}

/**
 * Restores of a whole disk into its (powered-off) VM: full write or quick
 * rollback. Without Nest; the RPC layer streams its progress.
 */
export class DiskRestoreService {
  private readonly logger = new Logger('DiskRestoreService');
  private readonly running = new Map<string, AbortController>();

  constructor(private readonly options: DiskRestoreOptions = {}) {}

  /** Abort a running restore (false when none runs under that id). */
  cancel(restoreId: string): boolean {
    const ac = this.running.get(restoreId);
    if (!ac) return false;
    ac.abort(new CaptureError('CANCELLED', `restore ${restoreId} was cancelled`));
    return true;
  }

  get size(): number {
    return this.running.size;
  }

  async restore(req: RestoreDiskRequest, hooks: { onProgress?: (e: RestoreProgressEvent) => void } = {}): Promise<RestoreDiskResult> {
    const source = validateRestore(req);
    if (this.running.has(req.restoreId)) throw new CaptureError('INVALID_ARGUMENT', `restore ${req.restoreId} is already running`);
    const ac = new AbortController();
    this.running.set(req.restoreId, ac);
    const t0 = Date.now();
    let client: VSphereClient | undefined;
    let target: DiskTarget | undefined;
    try {
      client = await connectVCenter(req.vcenter);
      const vm = await findVm(client, req);
      const where = `VM ${vm.name} (${vm.ref.value}) disk ${req.deviceKey}`;
      const disk = checkVm(vm, req, where);
      const sourceSize = await readSourceSize(source, req, disk, where);
      hooks.onProgress?.({ type: 'progress', phase: 'planning', bytesDone: 0, bytesTotal: 0, rateBytesPerSec: 0 });
      const plan = await this.plan(client, vm, req, sourceSize, where);
      if (ac.signal.aborted) throw ac.signal.reason;
      target = await (this.options.openTarget ?? openDiskTarget)(req.writer, vm, req.deviceKey, req.vcenter);
      const bytesPlanned = totalBytes(plan.extents);
      this.logger.log(
        `${where}: ${plan.mode} restore of ${bytesPlanned} bytes in ${plan.extents.length} extent(s)${plan.fallbackReason ? ` (fell back: ${plan.fallbackReason})` : ''}`,
      );
      const result = await this.write(req, source, target, plan.extents, ac.signal, where, hooks);
      return {
        restoreId: req.restoreId,
        mode: plan.mode,
        ...(plan.fallbackReason ? { fallbackReason: plan.fallbackReason, fallbackDetail: plan.fallbackDetail } : {}),
        bytesPlanned,
        bytesWritten: result.bytesWritten,
        bytesZeroed: result.bytesZeroed,
        extentCount: plan.extents.length,
        durationMs: Date.now() - t0,
      };
    } finally {
      this.running.delete(req.restoreId);
      await target?.close().catch(() => undefined);
      await client?.logout().catch(() => undefined);
    }
  }

  /** The plan's extents from the restore point into the disk; an abort fails with its reason (CANCELLED). */
  private write(
    req: RestoreDiskRequest,
    source: SourceOptions,
    target: DiskTarget,
    extents: Extent[],
    signal: AbortSignal,
    where: string,
    hooks: { onProgress?: (e: RestoreProgressEvent) => void },
  ): Promise<CopyProgress> {
    const tuning = req.tuning ?? {};
    return copyExtents({
      source,
      target: target.uri,
      extents,
      signal,
      requestSize: tuning.requestSize,
      queueDepth: tuning.queueDepth,
      connections: tuning.connections,
      progressIntervalMs: this.options.progressIntervalMs ?? 250,
      onProgress: (p) =>
        hooks.onProgress?.({
          type: 'progress',
          phase: 'writing',
          bytesDone: p.bytesWritten + p.bytesZeroed,
          bytesTotal: p.bytesTotal,
          rateBytesPerSec: Math.round(p.rate),
        }),
    }).catch((err: unknown) => {
      if (signal.aborted) throw signal.reason;
      throw toCaptureError(err, `${where}: writing the restore point into ${target.uri}`);
    });
  }

  /**
   * Full: the whole restore point (the copier reads block status: allocated
   * extents are written, holes become WRITE_ZEROES). Quick: the areas that
   * changed on the disk since the restore point's changeId, asked of vCenter
   * on a snapshot of the current state (the snapshot is removed at once).
   */
  private async plan(
    client: VSphereClient,
    vm: VmInfo,
    req: RestoreDiskRequest,
    size: number,
    where: string,
  ): Promise<{ mode: 'full' | 'quick'; extents: Extent[]; fallbackReason?: RestoreDiskResult['fallbackReason']; fallbackDetail?: string }> {
    const full = (fallbackReason?: RestoreDiskResult['fallbackReason'], fallbackDetail?: string) => ({
      mode: 'full' as const,
      extents: [{ offset: 0, length: size }],
      ...(fallbackReason ? { fallbackReason, fallbackDetail } : {}),
    });
    if (req.mode === 'full') return full();
    if (!req.changeId) return full('no-change-id', 'the restore point has no changeId');
    if (!vm.changeTrackingEnabled) return full('cbt-disabled', 'changed block tracking is off on the VM');
    let snapshot: MoRef | undefined;
    try {
      snapshot = await client.createSnapshot(vm.ref, {
        name: `${SNAPSHOT_PREFIX}restore-${req.restoreId}`,
        description: `Sendense quick rollback ${req.restoreId}: which areas changed (removed at once)`,
      });
      const disk = (await client.getSnapshotDisks(snapshot)).find((d) => d.key === req.deviceKey);
      try {
        const changed = await client.queryChangedDiskAreas(vm.ref, snapshot, req.deviceKey, req.changeId, disk?.capacityBytes);
        const extents = changed.areas
          .filter((a) => a.length > 0 && a.start < size)
          .map((a) => ({ offset: a.start, length: Math.min(a.length, size - a.start) }));
        return { mode: 'quick', extents };
      } catch (err) {
        if (!(err instanceof InvalidChangeIdError)) throw toCaptureError(err, `${where}: QueryChangedDiskAreas since ${req.changeId}`);
        const epoch = (id: string) => id.slice(0, Math.max(0, id.lastIndexOf('/')));
        const reason = disk?.changeId && epoch(disk.changeId) !== epoch(req.changeId) ? 'cbt-reset' : 'invalid-change-id';
        const detail = `QueryChangedDiskAreas refused changeId ${req.changeId}: ${err.faultType}${err.faultText ? `: ${err.faultText}` : ''}`;
        this.logger.warn(`${where}: ${detail}; writing the whole disk instead (${reason})`);
        return full(reason, detail);
      }
    } catch (err) {
      throw toCaptureError(err, `${where}: planning the quick rollback`);
    } finally {
      if (snapshot) {
        await client
          .removeSnapshot(snapshot)
          .catch((err: unknown) => this.logger.error(`${where}: removing snapshot ${snapshot?.value}: ${(err as Error).message}`));
      }
    }
  }
}

type SourceOptions = { uri: string; tlsPsk?: { identity: string; key: string } };

/** The request's shape, and the restore point's NBD connection options. */
function validateRestore(req: RestoreDiskRequest): SourceOptions {
  if (typeof req !== 'object' || req === null) throw invalidArgument('request is missing');
  if (typeof req.restoreId !== 'string' || !ID_RE.test(req.restoreId)) throw invalidArgument('restoreId must be 1-128 letters, digits or ._:-');
  if (req.mode !== 'full' && req.mode !== 'quick') throw invalidArgument('mode must be full or quick');
  if (!Number.isInteger(req.deviceKey)) throw invalidArgument('deviceKey must be a whole number');
  if (typeof req.sourceUri !== 'string' || !/^nbds?(\+unix)?:\/\//.test(req.sourceUri)) throw invalidArgument('sourceUri must be an nbd:// URI');
  if (req.sourceTlsPsk !== undefined) checkTlsPsk(req.sourceTlsPsk, 'sourceTlsPsk');
  return { uri: req.sourceUri, ...(req.sourceTlsPsk ? { tlsPsk: { identity: req.sourceTlsPsk.identity, key: req.sourceTlsPsk.key } } : {}) };
}

async function connectVCenter(vcenter: VCenterCredentials): Promise<VSphereClient> {
  try {
    return await VSphereClient.connect({
      url: vcenter.url,
      username: vcenter.username,
      password: vcenter.password,
      tls: { insecure: vcenter.insecure, thumbprint: vcenter.thumbprint },
    });
  } catch (err) {
    throw toCaptureError(err, `connecting to vCenter ${vcenter.url}`);
  }
}

async function findVm(client: VSphereClient, req: RestoreDiskRequest): Promise<VmInfo> {
  const selector = req.vm.moref ? { moref: req.vm.moref } : req.vm.instanceUuid ? { instanceUuid: req.vm.instanceUuid } : { name: req.vm.name as string };
  try {
    return await client.findVm(selector);
  } catch (err) {
    throw toCaptureError(err, `finding VM ${JSON.stringify(selector)}`);
  }
}

/** The disk to write, of a VM that is powered off. */
function checkVm(vm: VmInfo, req: RestoreDiskRequest, where: string): VirtualDiskInfo {
  // Writing under a running guest would corrupt it: refuse, and say what state it is in.
  if (vm.powerState !== 'poweredOff') {
    throw new CaptureError(
      'VM_POWERED_ON',
      `${where}: the VM is ${vm.powerState ?? 'in an unknown power state'}; power it off before restoring a disk into it`,
    );
  }
  const disk = vm.disks.find((d) => d.key === req.deviceKey);
  if (!disk) throw new CaptureError('NOT_FOUND', `${where}: the VM has no such disk (it has ${vm.disks.map((d) => d.key).join(', ') || 'none'})`);
  return disk;
}

/** The restore point's size, which must fit the disk. */
async function readSourceSize(source: SourceOptions, req: RestoreDiskRequest, disk: VirtualDiskInfo, where: string): Promise<number> {
  const client = await NbdClient.connect(source).catch((err: unknown) => {
    throw toCaptureError(err, `${where}: opening the restore point ${req.sourceUri}`);
  });
  let sourceSize: number;
  try {
    sourceSize = client.size;
  } finally {
    await client.close();
  }
  if (sourceSize > disk.capacityBytes) {
    throw invalidArgument(`${where}: the restore point is ${sourceSize} bytes, larger than the disk (${disk.capacityBytes}); grow the disk first`);
  }
  return sourceSize;
}
