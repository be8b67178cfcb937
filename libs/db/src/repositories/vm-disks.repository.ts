import type { PrismaClient } from '../prisma-client';
import type { Prisma, VmDisk } from '../generated/client';

/** A disk as vCenter (or the Capture Agent) reports it. */
export interface DiskSeen {
  deviceKey: number;
  label: string | null;
  capacityBytes: number;
  fileName: string | null;
}

/**
 * Record a disk the VM has and the database does not know yet. It gets the
 * next free index (`disk-<n>` in the repository); indices of removed disks
 * are never reused, so an old chain can never be continued by another disk.
 */
export async function addVmDisk(prisma: Pick<PrismaClient | Prisma.TransactionClient, 'vmDisk'>, vmContextId: string, d: DiskSeen): Promise<VmDisk> {
  const max = await prisma.vmDisk.aggregate({ where: { vmContextId }, _max: { diskIndex: true } });
  return prisma.vmDisk.create({
    data: {
      id: `${vmContextId}-${d.deviceKey}`.slice(0, 64),
      vmContextId,
      diskIndex: (max._max.diskIndex ?? -1) + 1,
      deviceKey: d.deviceKey,
      label: d.label,
      capacityBytes: BigInt(d.capacityBytes),
      backingFile: d.fileName,
    },
  });
}

/** The vm_disks table: the disks of protected VMs and the base of their next incremental. */
export class VmDiskRepository {
  constructor(private readonly prisma: PrismaClient) {}

  listForVm(vmContextId: string): Promise<VmDisk[]> {
    return this.prisma.vmDisk.findMany({ where: { vmContextId }, orderBy: { diskIndex: 'asc' } });
  }

  findByIndex(vmContextId: string, diskIndex: number): Promise<VmDisk | null> {
    return this.prisma.vmDisk.findUnique({ where: { vmContextId_diskIndex: { vmContextId, diskIndex } } });
  }

  /** A disk seen for the first time: the next free index. */
  add(vmContextId: string, d: DiskSeen): Promise<VmDisk> {
    return addVmDisk(this.prisma, vmContextId, d);
  }

  /** What vCenter says now about a known disk (its name and file). */
  async updateSeen(id: string, d: Pick<DiskSeen, 'label' | 'fileName'>): Promise<void> {
    await this.prisma.vmDisk.update({ where: { id }, data: { label: d.label, backingFile: d.fileName } });
  }

  /** Refresh a VM's disk rows from an inventory read: known disks updated, new ones added. */
  async syncSeen(vmContextId: string, seen: readonly DiskSeen[]): Promise<void> {
    const known = await this.listForVm(vmContextId);
    for (const d of seen) {
      const k = known.find((x) => x.deviceKey === d.deviceKey);
      if (k) await this.updateSeen(k.id, d);
      else known.push(await this.add(vmContextId, d));
    }
  }
}
