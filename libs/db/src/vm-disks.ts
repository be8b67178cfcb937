import type { PrismaClient, VmDisk } from './generated/client';

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
export async function addVmDisk(prisma: Pick<PrismaClient, 'vmDisk'>, vmContextId: string, d: DiskSeen): Promise<VmDisk> {
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
