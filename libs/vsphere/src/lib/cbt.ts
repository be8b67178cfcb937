import { InvalidChangeIdError, VSphereError } from './errors';
import { getSnapshotDisks } from './inventory';
import type { VSphereSession } from './session';
import type { ChangedAreas, DiskChangeExtent, DiskChangeInfo } from './types';
import { arr, child, childNumber, el, moRefEl, type MoRef } from './xml';

/** One QueryChangedDiskAreas call: the window starting at `startOffset`. */
export async function queryChangedDiskAreasPage(
  session: VSphereSession,
  vm: MoRef,
  snapshot: MoRef,
  deviceKey: number,
  changeId: string,
  startOffset: number,
): Promise<DiskChangeInfo> {
  const rv = await session.call(
    'QueryChangedDiskAreas',
    moRefEl('_this', vm) + moRefEl('snapshot', snapshot) + el('deviceKey', deviceKey) + el('startOffset', startOffset) + el('changeId', changeId),
    // vCenter reports a stale/unknown changeId and a CBT reset as FileFault.
    { faults: { FileFault: InvalidChangeIdError } },
  );
  return {
    startOffset: childNumber(rv, 'startOffset') ?? startOffset,
    length: childNumber(rv, 'length') ?? 0,
    changedArea: arr(child(rv, 'changedArea')).map((a) => ({
      start: childNumber(a, 'start') ?? 0,
      length: childNumber(a, 'length') ?? 0,
    })),
  };
}

/**
 * Every changed area of a disk in a snapshot since `changeId` ("*" for all
 * allocated areas): QueryChangedDiskAreas answers one window at a time, so
 * this pages with startOffset until the whole disk is covered.
 */
export async function queryChangedDiskAreas(
  session: VSphereSession,
  vm: MoRef,
  snapshot: MoRef,
  deviceKey: number,
  changeId: string,
  capacityBytes?: number,
): Promise<ChangedAreas> {
  let capacity = capacityBytes;
  if (capacity === undefined) {
    const disk = (await getSnapshotDisks(session, snapshot)).find((d) => d.key === deviceKey);
    if (!disk) throw new VSphereError(`snapshot ${snapshot.value} has no disk with device key ${deviceKey}`);
    capacity = disk.capacityBytes;
  }
  const areas: DiskChangeExtent[] = [];
  let offset = 0;
  let pages = 0;
  while (offset < capacity) {
    const page = await queryChangedDiskAreasPage(session, vm, snapshot, deviceKey, changeId, offset);
    pages++;
    for (const a of page.changedArea) {
      const last = areas[areas.length - 1];
      // Windows cut areas at their edges; join the pieces again.
      if (last && last.start + last.length === a.start) last.length += a.length;
      else areas.push({ ...a });
    }
    const next = page.startOffset + page.length;
    if (next <= offset) {
      throw new VSphereError(`QueryChangedDiskAreas at offset ${offset} made no progress (window ${page.startOffset}+${page.length})`);
    }
    offset = next;
  }
  return { areas, pages, capacityBytes: capacity };
}
