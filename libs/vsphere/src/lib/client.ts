import { queryChangedDiskAreas, queryChangedDiskAreasPage } from './cbt';
import { listVmsInFolder } from './folders';
import { findVm, getSnapshotDisks, getVm, listSnapshots, listVms, vmRef, type VmSelector } from './inventory';
import { VSphereSession, type SessionOptions } from './session';
import { createSnapshot, enableChangeTracking, removeSnapshot, setPower, type CreateSnapshotOptions, type RemoveSnapshotOptions } from './snapshots';
import { waitForTask, type TaskResult, type WaitOptions } from './tasks';
import type { ChangedAreas, DiskChangeInfo, ServiceContent, SnapshotInfo, VirtualDiskInfo, VmInfo } from './types';
import { moRefEl, text, type MoRef } from './xml';

export type VSphereClientOptions = SessionOptions & {
  /** maxObjects per RetrievePropertiesEx page (default 100). */
  pageSize?: number;
};

/**
 * The vSphere Web Services client of a backup product: sessions, VM and
 * disk discovery, CBT, snapshots, tasks and changed-block queries.
 */
export class VSphereClient {
  private constructor(
    readonly session: VSphereSession,
    private readonly pageSize: number | undefined,
  ) {}

  /** RetrieveServiceContent + Login. */
  static async connect(options: VSphereClientOptions): Promise<VSphereClient> {
    const session = new VSphereSession(options);
    try {
      await session.connect();
    } catch (err) {
      await session.close();
      throw err;
    }
    return new VSphereClient(session, options.pageSize);
  }

  get serviceContent(): ServiceContent {
    return this.session.serviceContent;
  }

  /** Log out and close the connections; the client is unusable afterwards. */
  async logout(): Promise<void> {
    await this.session.logout();
  }

  /** The server clock (also a cheap session check). */
  async currentTime(): Promise<Date> {
    const rv = await this.session.call('CurrentTime', moRefEl('_this', { type: 'ServiceInstance', value: 'ServiceInstance' }));
    return new Date(text(rv) ?? '');
  }

  listVms(): Promise<VmInfo[]> {
    return listVms(this.session, this.pageSize);
  }

  /**
   * The VMs in an inventory folder and its sub-folders: `prod/web` below the
   * datacenter's VM folder, `<datacenter>/prod/web` when there are several
   * (see `parseFolderPath`). FolderNotFoundError names what exists where the path stopped.
   */
  listVmsInFolder(path: string): Promise<VmInfo[]> {
    return listVmsInFolder(this.session, path, this.pageSize);
  }

  /** By name, managed object id or instance UUID; NotFoundError if none (or several). */
  findVm(selector: VmSelector): Promise<VmInfo> {
    return findVm(this.session, selector, this.pageSize);
  }

  getVm(vm: MoRef | string): Promise<VmInfo> {
    return getVm(this.session, typeof vm === 'string' ? vmRef(vm) : vm);
  }

  /** The VM's snapshots, parents before children. */
  listSnapshots(vm: MoRef): Promise<SnapshotInfo[]> {
    return listSnapshots(this.session, vm);
  }

  getSnapshotDisks(snapshot: MoRef): Promise<VirtualDiskInfo[]> {
    return getSnapshotDisks(this.session, snapshot);
  }

  enableChangeTracking(vm: MoRef, options?: WaitOptions): Promise<void> {
    return enableChangeTracking(this.session, vm, options);
  }

  createSnapshot(vm: MoRef, options: CreateSnapshotOptions): Promise<MoRef> {
    return createSnapshot(this.session, vm, options);
  }

  powerOff(vm: MoRef, options?: WaitOptions): Promise<void> {
    return setPower(this.session, vm, false, options);
  }

  powerOn(vm: MoRef, options?: WaitOptions): Promise<void> {
    return setPower(this.session, vm, true, options);
  }

  removeSnapshot(snapshot: MoRef, options?: RemoveSnapshotOptions): Promise<void> {
    return removeSnapshot(this.session, snapshot, options);
  }

  waitForTask(task: MoRef, options?: WaitOptions): Promise<TaskResult> {
    return waitForTask(this.session, task, options);
  }

  /** One page (window) of QueryChangedDiskAreas. */
  queryChangedDiskAreasPage(vm: MoRef, snapshot: MoRef, deviceKey: number, changeId: string, startOffset = 0): Promise<DiskChangeInfo> {
    return queryChangedDiskAreasPage(this.session, vm, snapshot, deviceKey, changeId, startOffset);
  }

  /** All changed areas of the disk, paging until the disk is covered. */
  queryChangedDiskAreas(vm: MoRef, snapshot: MoRef, deviceKey: number, changeId: string, capacityBytes?: number): Promise<ChangedAreas> {
    return queryChangedDiskAreas(this.session, vm, snapshot, deviceKey, changeId, capacityBytes);
  }
}
