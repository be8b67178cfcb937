import { BadRequestException, ConflictException, Inject, Injectable, NotFoundException } from '@nestjs/common';
import { inventoryRecord, InvalidLoginError, SoapFaultError, TransportError, VSphereClient, type VmInfo } from '@sendense/vsphere';
import type { GatewaySettings } from '@sendense/config';
import { SecretBox, VCenterRepository, VmContextRepository, type VCenter } from '@sendense/db';
import type { DiskReaderSpec } from '@sendense/contracts';
import { SETTINGS } from '../common/tokens';
import type { ImportedVmDto, VCenterDto } from './dto/vcenter.dto';

export interface RegisterVCenter {
  name: string;
  url: string;
  username: string;
  password: string;
  insecure?: boolean;
  thumbprint?: string;
  diskReader?: DiskReaderSpec;
}

export function toVCenterDto(v: VCenter): VCenterDto {
  return {
    id: v.id,
    name: v.name,
    url: v.url,
    username: v.username,
    insecure: v.insecure,
    thumbprint: v.thumbprint,
    disk_reader: v.diskReader,
    created_at: v.createdAt,
  };
}

/** A fixed description of why a login failed; the server's own words are not passed on. */
export function loginFailure(err: unknown): string {
  if (err instanceof InvalidLoginError) return 'the user name or password was refused';
  if (err instanceof TransportError) {
    const code = (err.cause as NodeJS.ErrnoException | undefined)?.code;
    if (err.status !== undefined) return `the URL answered HTTP ${err.status}, not as a vCenter SDK endpoint (is it https://<vcenter>/sdk?)`;
    return `the URL could not be reached${code ? ` (${code})` : ''}, or its TLS certificate was not accepted (give thumbprint, or insecure for a lab)`;
  }
  if (err instanceof SoapFaultError) return `vCenter refused the login (${err.faultType})`;
  return 'the URL did not answer as a vCenter SDK endpoint';
}

@Injectable()
export class VCentersService {
  constructor(
    private readonly vcenters: VCenterRepository,
    private readonly vms: VmContextRepository,
    @Inject(SETTINGS) private readonly settings: GatewaySettings,
  ) {}

  private box(): SecretBox {
    try {
      return new SecretBox(this.settings.SENDENSE_SECRET_KEY);
    } catch (err) {
      throw new BadRequestException((err as Error).message);
    }
  }

  private async connect(v: { url: string; username: string; password: string; insecure?: boolean; thumbprint?: string | null }) {
    try {
      return await VSphereClient.connect({
        url: v.url,
        username: v.username,
        password: v.password,
        tls: v.insecure ? { insecure: true } : v.thumbprint ? { thumbprint: v.thumbprint } : {},
        keepAliveMs: 0,
      });
    } catch (err) {
      // Never echo what the URL answered: this endpoint must not become a way to read arbitrary URLs (SSRF).
      throw new BadRequestException(`cannot log in to ${v.url} as ${v.username}: ${loginFailure(err)}`);
    }
  }

  /** Registers a vCenter after checking that the credentials work. */
  async register(req: RegisterVCenter): Promise<VCenterDto> {
    const box = this.box();
    if (await this.vcenters.findByName(req.name)) {
      throw new ConflictException(`a vCenter named ${req.name} is already registered`);
    }
    const client = await this.connect(req);
    await client.logout().catch(() => undefined);
    const v = await this.vcenters.create({
      name: req.name,
      url: req.url,
      username: req.username,
      passwordEnc: box.seal(req.password),
      insecure: req.insecure ?? false,
      thumbprint: req.thumbprint ?? null,
      diskReader: req.diskReader ?? { kind: 'vddk' },
    });
    return toVCenterDto(v);
  }

  async list(): Promise<VCenterDto[]> {
    return (await this.vcenters.list()).map(toVCenterDto);
  }

  /** Lists the vCenter's VMs and registers each as a VM context (idempotent). */
  async importVms(id: string, names?: string[]): Promise<ImportedVmDto[]> {
    const v = await this.vcenters.find(id);
    if (!v) throw new NotFoundException(`no vCenter with id ${id}`);
    const client = await this.connect({ ...v, password: this.box().open(v.passwordEnc) });
    let vms: VmInfo[];
    try {
      vms = await client.listVms();
    } finally {
      await client.logout().catch(() => undefined);
    }
    if (names?.length) {
      const missing = names.filter((n) => !vms.some((vm) => vm.name === n));
      if (missing.length) throw new NotFoundException(`vCenter ${v.name} has no VM named ${missing.join(', ')}`);
      vms = vms.filter((vm) => names.includes(vm.name));
    }
    const out: ImportedVmDto[] = [];
    for (const vm of vms) {
      const ctx = await this.vms.importSeen(v, inventoryRecord(vm));
      out.push({ context_id: ctx.contextId, vm_name: ctx.vmName, moref: ctx.vmMoref, disks: vm.disks.length, cbt_enabled: ctx.cbtEnabled });
    }
    return out;
  }
}
