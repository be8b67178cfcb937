import { BadRequestException, ConflictException, Injectable, NotFoundException } from '@nestjs/common';
import { VmContextRepository, type VmContext } from '@sendense/db';
import type { VmDto } from './dto/vm.dto';

@Injectable()
export class VmsService {
  constructor(private readonly vms: VmContextRepository) {}

  /** A VM by context id or by name (a name that two vCenters share must be given as context id). */
  async resolve(q: { vmContextId?: string; vmName?: string }): Promise<VmContext> {
    if (q.vmContextId) {
      const ctx = await this.vms.find(q.vmContextId);
      if (!ctx) throw new NotFoundException(`no VM with context id ${q.vmContextId}`);
      return ctx;
    }
    if (!q.vmName) throw new BadRequestException('give vm_name or vm_context_id');
    const [only, ...more] = await this.vms.findByName(q.vmName);
    if (!only) throw new NotFoundException(`no VM named ${q.vmName} is registered (import it from its vCenter first)`);
    if (more.length) {
      const all = [only, ...more];
      throw new ConflictException(`${all.length} VMs are named ${q.vmName}; give vm_context_id (one of ${all.map((f) => f.contextId).join(', ')})`);
    }
    return only;
  }

  async list(): Promise<VmDto[]> {
    const vms = await this.vms.listWithDisks();
    return vms.map((v) => ({
      context_id: v.contextId,
      vm_name: v.vmName,
      vcenter_id: v.vcenterId,
      moref: v.vmMoref,
      instance_uuid: v.instanceUuid,
      cbt_enabled: v.cbtEnabled,
      cbt_state: v.cbtState,
      disks: v.disks.map((d) => ({
        disk_id: d.diskIndex,
        device_key: d.deviceKey,
        label: d.label,
        capacity_bytes: Number(d.capacityBytes),
        last_change_id: d.lastChangeId,
        last_backup_id: d.lastBackupId,
      })),
    }));
  }
}
