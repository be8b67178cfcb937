import { Agent, fetch } from 'undici';
import type { StandInDiskConfig } from './stand-in';

/**
 * Client of the stand-in's harness HTTP API (tools/vcsim/README.md): where
 * a snapshot's disk data is readable over NBD, and guest actions.
 */
export interface HarnessDisk {
  key: number;
  capacityBytes: number;
  fileName: string;
  image: string;
  liveUri: string;
  socket: string;
  pid: number;
  cbtEpoch: string;
  activeBitmap: string;
  cbtResets: number;
  /** The deliberate CBT fault is on: incremental QueryChangedDiskAreas answers leave out their largest area. */
  cbtForgetsArea: boolean;
  snapshots: string[];
}

export interface HarnessVm {
  name: string;
  moref: string;
  instanceUuid: string;
  disks: HarnessDisk[];
}

export interface SnapshotNbdLocation {
  /** libnbd/qemu URI, e.g. `nbd+unix:///snapshot-12?socket=/…/nbd.sock`. */
  uri: string;
  socket: string;
  exportName: string;
  sizeBytes: number;
  readOnly: boolean;
  changeId?: string;
}

export class HarnessError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'HarnessError';
  }
}

export class HarnessClient {
  // The stand-in serves a self-signed certificate; this client only ever
  // talks to the stand-in, so it does not verify it.
  private readonly dispatcher = new Agent({ connect: { rejectUnauthorized: false } });

  constructor(readonly baseUrl: string) {}

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  private async request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      dispatcher: this.dispatcher,
      headers: body === undefined ? undefined : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = (await res.json()) as T & { error?: string };
    if (!res.ok) throw new HarnessError(`${method} ${path}: ${json.error ?? res.status}`, res.status);
    return json;
  }

  vms(): Promise<HarnessVm[]> {
    return this.request('GET', '/vms');
  }

  /** By name or moref. */
  vm(vm: string): Promise<HarnessVm> {
    return this.request('GET', `/vms/${encodeURIComponent(vm)}`);
  }

  snapshotNbd(vm: string, snapshot: string, deviceKey: number): Promise<SnapshotNbdLocation> {
    return this.request('GET', `/vms/${encodeURIComponent(vm)}/snapshots/${encodeURIComponent(snapshot)}/disks/${deviceKey}/nbd`);
  }

  private disk(vm: string, deviceKey: number, action: string): string {
    return `/vms/${encodeURIComponent(vm)}/disks/${deviceKey}/${action}`;
  }

  async write(vm: string, deviceKey: number, offset: number, data: Buffer): Promise<void> {
    await this.request('POST', this.disk(vm, deviceKey, 'write'), { offset, dataBase64: data.toString('base64') });
  }

  async zero(vm: string, deviceKey: number, offset: number, length: number): Promise<void> {
    await this.request('POST', this.disk(vm, deviceKey, 'zero'), { offset, length });
  }

  async read(vm: string, deviceKey: number, offset: number, length: number): Promise<Buffer> {
    const r = await this.request<{ dataBase64: string }>('GET', `${this.disk(vm, deviceKey, 'read')}?offset=${offset}&length=${length}`);
    return Buffer.from(r.dataBase64, 'base64');
  }

  /** Overwrite `percent` of the disk's 64 KiB chunks with random data; returns what was written. */
  async fill(vm: string, deviceKey: number, percent: number, seed = Date.now()): Promise<{ start: number; length: number }[]> {
    const r = await this.request<{ areas: { start: number; length: number }[] | null }>('POST', this.disk(vm, deviceKey, 'fill'), { percent, seed });
    return r.areas ?? [];
  }

  /** Write a file into the ext4 filesystem on partition 1 of the disk. */
  async writeFile(vm: string, deviceKey: number, path: string, content: string | Buffer): Promise<{ blocksWritten: number }> {
    const body = typeof content === 'string' ? { path, content } : { path, contentBase64: content.toString('base64') };
    return this.request('POST', this.disk(vm, deviceKey, 'files'), body);
  }

  /** A CBT bug on purpose: while on, incremental QueryChangedDiskAreas answers for the disk leave out their largest changed area. */
  /** Moves the VM into an inventory folder below the datacenter's vm folder (`prod/web`; made when missing), by MoveIntoFolder_Task. */
  moveToFolder(vm: string, path: string): Promise<{ moref: string; folder: string }> {
    return this.request('POST', `/vms/${encodeURIComponent(vm)}/folder`, { path });
  }

  cbtFault(vm: string, deviceKey: number, forgetOneArea: boolean): Promise<HarnessDisk> {
    return this.request('POST', this.disk(vm, deviceKey, 'cbt-fault'), { forgetOneArea });
  }

  /** `e2fsck -fn` of the ext4 file system on partition 1 of the live disk (read-only, on a scratch copy). */
  fsck(vm: string, deviceKey: number): Promise<{ clean: boolean; output: string }> {
    return this.request('GET', this.disk(vm, deviceKey, 'fsck'));
  }

  /** Throws, with e2fsck's findings, unless the guest's ext4 on the disk is clean: every test that writes guest files calls it. */
  async assertGuestFsClean(vm: string, deviceKey: number): Promise<void> {
    const r = await this.fsck(vm, deviceKey);
    if (!r.clean) throw new Error(`the guest file system of ${vm} disk ${deviceKey} is damaged (e2fsck -fn):\n${r.output}`);
  }

  /**
   * Extend a disk to `sizeMiB` (grow only; refused while it has snapshots), as an administrator would:
   * qemu grows the image online, the simulator's VirtualDisk capacity follows (ReconfigVM_Task edit),
   * and change tracking of the disk starts a new epoch: changeIds from before the resize get the FileFault.
   */
  resizeDisk(vm: string, deviceKey: number, sizeMiB: number): Promise<HarnessDisk> {
    return this.request('POST', this.disk(vm, deviceKey, 'resize'), { sizeMiB });
  }

  /** Hot-add a disk (ReconfigVM_Task add on the VM's SCSI controller, key 2000 + n; image made as at start). */
  addDisk(vm: string, disk: StandInDiskConfig): Promise<HarnessDisk> {
    return this.request('POST', `/vms/${encodeURIComponent(vm)}/disks`, disk);
  }

  /** kill -9 the disk's qemu-storage-daemon (an unclean stop) and wait for its restart. */
  crash(vm: string, deviceKey: number): Promise<HarnessDisk> {
    return this.request('POST', this.disk(vm, deviceKey, 'crash'));
  }
}
