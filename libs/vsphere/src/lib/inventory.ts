import { AmbiguousVmError, NotFoundError } from './errors';
import { retrieveOne, retrieveProperties, withContainerView } from './property-collector';
import type { VSphereSession } from './session';
import type { SnapshotInfo, VirtualDiskInfo, VmInfo } from './types';
import { arr, child, childNumber, childText, text, toMoRef, xsiType, type MoRef } from './xml';

const VM_PATHS = [
  'name',
  'config.instanceUuid',
  'config.uuid',
  'config.changeTrackingEnabled',
  'config.hardware.device',
  'runtime.powerState',
  'snapshot.currentSnapshot',
] as const;

/** Virtual disks out of a `config.hardware.device` value (ArrayOfVirtualDevice). */
export function parseDisks(devices: unknown): VirtualDiskInfo[] {
  const list = arr(child(devices, 'VirtualDevice'));
  const disks: VirtualDiskInfo[] = [];
  for (const d of list) {
    const type = xsiType(d);
    if (type !== 'VirtualDisk' && !(type === undefined && child(d, 'capacityInKB') !== undefined)) continue;
    const backing = child(d, 'backing');
    const bytes = childNumber(d, 'capacityInBytes');
    const kb = childNumber(d, 'capacityInKB') ?? 0;
    disks.push({
      key: childNumber(d, 'key') ?? 0,
      label: childText(child(d, 'deviceInfo'), 'label'),
      // capacityInBytes is newer and exact; older hosts send only KB.
      capacityBytes: bytes && bytes > 0 ? bytes : kb * 1024,
      fileName: childText(backing, 'fileName'),
      changeId: childText(backing, 'changeId') || undefined,
      controllerKey: childNumber(d, 'controllerKey'),
      unitNumber: childNumber(d, 'unitNumber'),
      backingType: xsiType(backing),
    });
  }
  return disks.sort((a, b) => a.key - b.key);
}

function toVmInfo(ref: MoRef, props: Record<string, unknown>): VmInfo {
  return {
    ref,
    name: text(props['name']) ?? '',
    instanceUuid: text(props['config.instanceUuid']),
    biosUuid: text(props['config.uuid']),
    powerState: text(props['runtime.powerState']),
    changeTrackingEnabled: text(props['config.changeTrackingEnabled']) === 'true',
    disks: parseDisks(props['config.hardware.device']),
    currentSnapshot: toMoRef(props['snapshot.currentSnapshot']),
  };
}

/** What a VM import stores of a listed VM (the shape of libs/db `InventoryVm`). */
export function inventoryRecord(vm: VmInfo) {
  return {
    name: vm.name,
    moref: vm.ref.value,
    instanceUuid: vm.instanceUuid ?? null,
    cbtEnabled: vm.changeTrackingEnabled,
    disks: vm.disks.map((d) => ({ deviceKey: d.key, label: d.label ?? null, capacityBytes: d.capacityBytes, fileName: d.fileName ?? null })),
  };
}

export function vmRef(value: string): MoRef {
  return { type: 'VirtualMachine', value };
}

/** Every VM in the inventory with its disks (paged RetrievePropertiesEx). */
export async function listVms(session: VSphereSession, pageSize?: number): Promise<VmInfo[]> {
  return listVmsIn(session, undefined, pageSize);
}

/** Every VM below a container (folder, recursive; default: the root folder) with its disks. */
export async function listVmsIn(session: VSphereSession, container: MoRef | undefined, pageSize?: number): Promise<VmInfo[]> {
  const objs = await withContainerView(session, 'VirtualMachine', container, (view) =>
    retrieveProperties(session, { type: 'VirtualMachine', pathSet: VM_PATHS, objects: [view], viaContainerView: true }, pageSize),
  );
  return objs.map((o) => toVmInfo(o.obj, o.props));
}

export async function getVm(session: VSphereSession, ref: MoRef): Promise<VmInfo> {
  const props = await retrieveOne(session, ref, VM_PATHS);
  if (props['name'] === undefined) throw new NotFoundError('NotFound', `virtual machine ${ref.value} not found`, 'RetrievePropertiesEx');
  return toVmInfo(ref, props);
}

export type VmSelector = { name: string } | { moref: string } | { instanceUuid: string };

export async function findVm(session: VSphereSession, selector: VmSelector, pageSize?: number): Promise<VmInfo> {
  if ('moref' in selector) return getVm(session, vmRef(selector.moref));
  // Match on two small properties first; a vCenter may hold thousands of
  // VMs, and only the match needs its devices.
  const all = await withContainerView(session, 'VirtualMachine', undefined, (view) =>
    retrieveProperties(session, { type: 'VirtualMachine', pathSet: ['name', 'config.instanceUuid'], objects: [view], viaContainerView: true }, pageSize),
  );
  const match =
    'name' in selector
      ? all.filter((vm) => text(vm.props['name']) === selector.name)
      : all.filter((vm) => text(vm.props['config.instanceUuid'])?.toLowerCase() === selector.instanceUuid.toLowerCase());
  const what = 'name' in selector ? `named ${selector.name}` : `with instance UUID ${selector.instanceUuid}`;
  if (match.length === 0) throw new NotFoundError('NotFound', `no virtual machine ${what}`, 'RetrievePropertiesEx');
  if (match.length > 1) {
    throw new AmbiguousVmError(
      what,
      match.map((m) => m.obj.value),
    );
  }
  return getVm(session, match[0].obj);
}

/** Disks as recorded in a snapshot (their changeIds are the snapshot's). */
export async function getSnapshotDisks(session: VSphereSession, snapshot: MoRef): Promise<VirtualDiskInfo[]> {
  const props = await retrieveOne(session, snapshot, ['config.hardware.device']);
  return parseDisks(props['config.hardware.device']);
}

/** A VM's snapshot tree (snapshot.rootSnapshotList), parents before children. */
export function parseSnapshotTree(list: unknown): SnapshotInfo[] {
  const out: SnapshotInfo[] = [];
  const walk = (nodes: unknown[], parent: MoRef | undefined) => {
    for (const n of nodes) {
      const ref = toMoRef(child(n, 'snapshot'));
      if (!ref) continue;
      out.push({
        ref,
        name: childText(n, 'name') ?? '',
        description: childText(n, 'description') || undefined,
        createTime: childText(n, 'createTime') || undefined,
        parent,
      });
      walk(arr(child(n, 'childSnapshotList')), ref);
    }
  };
  // As a property value the list arrives wrapped (ArrayOfVirtualMachineSnapshotTree).
  const top = child(list, 'VirtualMachineSnapshotTree');
  walk(arr(top !== undefined ? top : list), undefined);
  return out;
}

/** Every snapshot of a VM; empty when it has none. */
export async function listSnapshots(session: VSphereSession, vm: MoRef): Promise<SnapshotInfo[]> {
  const props = await retrieveOne(session, vm, ['snapshot.rootSnapshotList']);
  return parseSnapshotTree(props['snapshot.rootSnapshotList']);
}
