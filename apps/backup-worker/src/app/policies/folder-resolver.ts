import { FolderNotFoundError, inventoryRecord, InvalidFolderPathError, VSphereClient } from '@sendense/vsphere';
import type { SecretBox, VCenter, VCenterRepository, VmContextRepository } from '@sendense/db';

/** The VMs a folder holds now, on every registered vCenter. */
export interface FolderMembers {
  /** Context ids of the VMs in the folder (imported now when they were not yet). */
  contextIds: Set<string>;
  /** VMs this resolution imported (not registered before), by name. */
  imported: string[];
  /** vCenters that could not be asked, with why (the run goes on with the others). */
  unreachable: string[];
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Resolves a policy's folder at run time: on each registered vCenter, the
 * VMs in that inventory folder and its sub-folders (libs/vsphere
 * `listVmsInFolder`), each imported as `vcenter import` would (context and
 * disk rows), so a VM put into the folder after the policy was made, even
 * one never imported, is covered by the next run. A folder no vCenter has
 * is an error that names each vCenter and what exists there.
 */
export class FolderResolver {
  constructor(
    private readonly vcenters: VCenterRepository,
    private readonly vms: VmContextRepository,
    private readonly secrets: SecretBox | null,
  ) {}

  async resolve(path: string): Promise<FolderMembers> {
    const all = await this.vcenters.list();
    if (all.length === 0) throw new Error(`folder ${path}: no vCenter is registered (add one with sendense-ctl vcenter add)`);
    if (!this.secrets)
      throw new Error(`folder ${path}: SENDENSE_SECRET_KEY is not set on this worker, so the vCenter passwords cannot be read to list the folder`);
    const out: FolderMembers = { contextIds: new Set(), imported: [], unreachable: [] };
    const missing: string[] = [];
    let found = 0;
    for (const v of all) {
      let listed;
      try {
        listed = await this.list(v, path);
      } catch (err) {
        if (err instanceof InvalidFolderPathError) throw err;
        if (err instanceof FolderNotFoundError) missing.push(`vCenter ${v.name}: ${err.message}`);
        else out.unreachable.push(`vCenter ${v.name} (${v.url}) could not list folder ${path}: ${message(err)}`);
        continue;
      }
      found++;
      const known = new Set((await this.vms.findByVCenter(v.id)).map((c) => c.vmMoref));
      for (const vm of listed) {
        const ctx = await this.vms.importSeen(v, inventoryRecord(vm));
        if (!known.has(vm.ref.value)) out.imported.push(ctx.vmName);
        out.contextIds.add(ctx.contextId);
      }
    }
    if (found === 0) {
      const why = [...missing, ...out.unreachable].join('; ');
      throw new Error(
        `folder ${path} was not found on any registered vCenter (${why}); fix the inventory, or the policy (delete it and create it again with the right --folder)`,
      );
    }
    return out;
  }

  private async list(v: VCenter, path: string) {
    const secrets = this.secrets as SecretBox;
    const client = await VSphereClient.connect({
      url: v.url,
      username: v.username,
      password: secrets.open(v.passwordEnc),
      tls: v.insecure ? { insecure: true } : v.thumbprint ? { thumbprint: v.thumbprint } : {},
      keepAliveMs: 0,
    });
    try {
      return await client.listVmsInFolder(path);
    } finally {
      await client.logout().catch(() => undefined);
    }
  }
}
