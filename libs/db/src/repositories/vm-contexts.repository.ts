import { randomUUID } from 'node:crypto';
import type { PrismaClient } from '../prisma-client';
import type { VCenter, VmContext, VmDisk } from '../generated/client';
import { VmDiskRepository, type DiskSeen } from './vm-disks.repository';

export type VmContextWithDisks = VmContext & { disks: VmDisk[] };
export type VmContextForBackup = VmContext & { vcenter: VCenter | null; disks: VmDisk[] };

/** A VM as its vCenter lists it, to register or refresh. */
export interface VmSeen {
  vmName: string;
  vcenterId: string;
  /** Host part of the vCenter URL: with the moref it identifies the VM across renames. */
  vcenterHost: string;
  vmMoref: string;
  instanceUuid: string | null;
  cbtEnabled: boolean;
}

/** A VM as an inventory read returns it (libs/vsphere VmInfo, reduced to what is stored). */
export interface InventoryVm {
  name: string;
  moref: string;
  instanceUuid: string | null;
  cbtEnabled: boolean;
  disks: DiskSeen[];
}

/** A context id people can read: ctx-<name>-<8 hex>. */
export function newContextId(vmName: string): string {
  return `ctx-${vmName
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .slice(0, 40)}-${randomUUID().slice(0, 8)}`;
}

/** The vm_replication_contexts table: the VMs under protection. */
export class VmContextRepository {
  constructor(private readonly prisma: PrismaClient) {}

  find(contextId: string): Promise<VmContext | null> {
    return this.prisma.vmContext.findUnique({ where: { contextId } });
  }

  /** Every VM of that name (two vCenters may each have one). */
  findByName(vmName: string): Promise<VmContext[]> {
    return this.prisma.vmContext.findMany({ where: { vmName }, orderBy: { contextId: 'asc' } });
  }

  /** The VMs imported from one vCenter. */
  findByVCenter(vcenterId: string): Promise<VmContext[]> {
    return this.prisma.vmContext.findMany({ where: { vcenterId }, orderBy: { vmName: 'asc' } });
  }

  /** One VM with the vCenter it was imported from (null when that vCenter was removed), or null. */
  findWithVCenter(contextId: string): Promise<(VmContext & { vcenter: VCenter | null }) | null> {
    return this.prisma.vmContext.findUnique({ where: { contextId }, include: { vcenter: true } });
  }

  /** One VM with its disks by index, or null. */
  findWithDisks(contextId: string): Promise<VmContextWithDisks | null> {
    return this.prisma.vmContext.findUnique({ where: { contextId }, include: { disks: { orderBy: { diskIndex: 'asc' } } } });
  }

  /** What a backup starts from: the VM, its vCenter (null when removed) and its disks by index. */
  findForBackup(contextId: string): Promise<VmContextForBackup | null> {
    return this.prisma.vmContext.findUnique({ where: { contextId }, include: { vcenter: true, disks: { orderBy: { diskIndex: 'asc' } } } });
  }

  /** After a backup: CBT is on (the backup enabled or used it) and the name/UUID are what vCenter said. */
  async recordBackedUp(contextId: string, seen: { vmName: string; instanceUuid: string | null }): Promise<void> {
    await this.prisma.vmContext.update({
      where: { contextId },
      data: { cbtEnabled: true, cbtState: 'enabled', vmName: seen.vmName, instanceUuid: seen.instanceUuid },
    });
  }

  /** By name, each with its disks by index. */
  listWithDisks(): Promise<VmContextWithDisks[]> {
    return this.prisma.vmContext.findMany({ include: { disks: { orderBy: { diskIndex: 'asc' } } }, orderBy: { vmName: 'asc' } });
  }

  /**
   * Register a VM, or refresh the one already known by vCenter host and moref
   * (it keeps its context id, and so its chains). The CBT state is set only
   * on registration; backups keep it up to date afterwards.
   */
  async registerSeen(vm: VmSeen): Promise<VmContext> {
    const existing = await this.prisma.vmContext.findUnique({ where: { vcenterHost_vmMoref: { vcenterHost: vm.vcenterHost, vmMoref: vm.vmMoref } } });
    const contextId = existing?.contextId ?? newContextId(vm.vmName);
    return this.prisma.vmContext.upsert({
      where: { contextId },
      create: { contextId, ...vm, cbtState: vm.cbtEnabled ? 'enabled' : 'disabled' },
      update: { vmName: vm.vmName, vcenterId: vm.vcenterId, instanceUuid: vm.instanceUuid, cbtEnabled: vm.cbtEnabled },
    });
  }

  /**
   * A VM import (`vcenter import`, and a policy run that finds a VM in its
   * folder not imported yet): the context registered or refreshed by vCenter
   * host and moref, its disk rows synced.
   */
  async importSeen(vcenter: Pick<VCenter, 'id' | 'url'>, vm: InventoryVm): Promise<VmContext> {
    const ctx = await this.registerSeen({
      vmName: vm.name,
      vcenterId: vcenter.id,
      vcenterHost: new URL(vcenter.url).host,
      vmMoref: vm.moref,
      instanceUuid: vm.instanceUuid,
      cbtEnabled: vm.cbtEnabled,
    });
    await new VmDiskRepository(this.prisma).syncSeen(ctx.contextId, vm.disks);
    return ctx;
  }
}
