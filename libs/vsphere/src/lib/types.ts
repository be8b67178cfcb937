import type { MoRef } from './xml';

export type { MoRef };

export interface ServiceContent {
  rootFolder: MoRef;
  propertyCollector: MoRef;
  viewManager: MoRef;
  sessionManager: MoRef;
  searchIndex?: MoRef;
  about: {
    fullName: string;
    apiVersion: string;
    apiType: string;
    instanceUuid?: string;
  };
}

export interface VirtualDiskInfo {
  /** Device key, the `deviceKey` of QueryChangedDiskAreas. */
  key: number;
  label?: string;
  capacityBytes: number;
  /** Datastore path of the backing, e.g. `[ds1] vm/vm.vmdk`. */
  fileName?: string;
  /** Backing changeId; absent while CBT has never been active on the disk. */
  changeId?: string;
  controllerKey?: number;
  unitNumber?: number;
  backingType?: string;
}

export interface VmInfo {
  ref: MoRef;
  name: string;
  instanceUuid?: string;
  biosUuid?: string;
  powerState?: string;
  /** config.changeTrackingEnabled. */
  changeTrackingEnabled: boolean;
  disks: VirtualDiskInfo[];
  currentSnapshot?: MoRef;
}

/** One snapshot of a VM (a node of snapshot.rootSnapshotList, flattened). */
export interface SnapshotInfo {
  ref: MoRef;
  name: string;
  description?: string;
  /** ISO time vCenter recorded. */
  createTime?: string;
  /** The snapshot this one was taken on top of, if any. */
  parent?: MoRef;
}

export interface DiskChangeExtent {
  start: number;
  length: number;
}

/** One QueryChangedDiskAreas answer: the window it covers and its areas. */
export interface DiskChangeInfo {
  startOffset: number;
  length: number;
  changedArea: DiskChangeExtent[];
}

export interface ChangedAreas {
  areas: DiskChangeExtent[];
  /** Number of QueryChangedDiskAreas calls it took. */
  pages: number;
  capacityBytes: number;
}
