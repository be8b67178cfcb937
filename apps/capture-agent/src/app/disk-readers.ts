import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DiskReaderSpec, VCenterCredentials } from '@sendense/contracts';
import { Daemon, waitFor } from '@sendense/process';
import { HarnessClient, HarnessError } from '@sendense/vsphere';
import { CaptureError, invalidArgument } from './capture-error';

/** What a reader needs to find one disk of one snapshot. */
export interface SnapshotDiskRef {
  vcenter: VCenterCredentials;
  vmMoref: string;
  vmName: string;
  snapshotMoref: string;
  deviceKey: number;
  /** Backing file name as vCenter reports it, e.g. "[datastore1] vm/vm.vmdk". */
  fileName: string;
}

/** An open snapshot disk: an NBD URI to read it from until close(). */
export interface OpenedDisk {
  uri: string;
  /** Human-readable description of where the data comes from (for logs and errors). */
  describe: string;
  close(): Promise<void>;
}

/** Pluggable source of snapshot disk data. */
export interface DiskReader {
  open(disk: SnapshotDiskRef): Promise<OpenedDisk>;
}

/**
 * The VMware stand-in (tools/vcsim): its harness API says where the
 * snapshot disk is served over NBD (qemu-storage-daemon, read-only export).
 */
export class StandInNbdReader implements DiskReader {
  private readonly harness: HarnessClient;

  constructor(harnessUrl: string) {
    this.harness = new HarnessClient(harnessUrl.replace(/\/+$/, ''));
  }

  async open(disk: SnapshotDiskRef): Promise<OpenedDisk> {
    try {
      const where = await this.harness.snapshotNbd(disk.vmMoref, disk.snapshotMoref, disk.deviceKey);
      return { uri: where.uri, describe: `stand-in ${where.uri}`, close: async () => undefined };
    } catch (err) {
      if (err instanceof HarnessError && (err.status === 404 || err.status === 410)) {
        throw new CaptureError('NOT_FOUND', `the stand-in does not serve disk ${disk.deviceKey} of snapshot ${disk.snapshotMoref}: ${err.message}`);
      }
      throw err;
    }
  }
}

export interface NbdkitVddkParams {
  /** Unix socket nbdkit listens on. */
  socket: string;
  /** File holding the vCenter password (mode 0600); passed as password=+FILE. */
  passwordFile: string;
  /** VDDK distribution directory (vmware-vix-disklib-distrib). */
  libdir?: string;
  /** vCenter or ESXi host name. */
  server: string;
  port?: number;
  user: string;
  /** SHA-1 thumbprint of the server certificate, colon separated. */
  thumbprint: string;
  vmMoref: string;
  /** Read the disk as of this snapshot; absent: the disk itself (a restore writes the powered-off VM's disk). */
  snapshotMoref?: string;
  fileName: string;
  /** Writable export (restore into the disk); default read-only. */
  writable?: boolean;
  /** e.g. "hotadd:nbdssl:nbd" (VDDK tries them in order). */
  transports?: string;
}

/** SHA-1 thumbprint as VDDK wants it: upper-case hex pairs separated by colons. */
export function vddkThumbprint(thumbprint: string): string {
  const hex = thumbprint.replace(/[^0-9a-f]/gi, '').toUpperCase();
  if (hex.length !== 40) throw invalidArgument(`VDDK needs the SHA-1 thumbprint of the vCenter certificate (40 hex digits), got "${thumbprint}"`);
  return (hex.match(/../g) ?? []).join(':');
}

/**
 * The nbdkit command line (arguments after "nbdkit") that serves one disk of
 * one snapshot read-only over a Unix socket through VMware's VDDK. The
 * password is never on the command line: password=+FILE makes nbdkit read it
 * from the file. Each value is one argv element, so names with spaces (the
 * datastore path "[ds1] vm/vm.vmdk") need no quoting and reach no shell.
 */
export function nbdkitVddkArgs(p: NbdkitVddkParams): string[] {
  const args = ['-U', p.socket, '--exit-with-parent', '--foreground', ...(p.writable ? [] : ['--readonly']), 'vddk'];
  if (p.libdir) args.push(`libdir=${p.libdir}`);
  args.push(`server=${p.server}`);
  if (p.port !== undefined && p.port !== 443) args.push(`port=${p.port}`);
  args.push(
    `user=${p.user}`,
    `password=+${p.passwordFile}`,
    `thumbprint=${vddkThumbprint(p.thumbprint)}`,
    `vm=moref=${p.vmMoref}`,
    ...(p.snapshotMoref ? [`snapshot=${p.snapshotMoref}`] : []),
    `file=${p.fileName}`,
  );
  if (p.transports) args.push(`transports=${p.transports}`);
  return args;
}

/** What starts nbdkit; replaceable in tests. */
export type DaemonStarter = (command: string, args: readonly string[]) => Promise<Pick<Daemon, 'running' | 'stop' | 'exitError'>>;

export interface VddkReaderOptions {
  libdir?: string;
  transports?: string;
  nbdkit?: string;
  /** Parent of the per-disk temp directories (socket and password file). */
  tmpRoot?: string;
  startTimeoutMs?: number;
  start?: DaemonStarter;
}

/**
 * Real vCenter: one `nbdkit vddk` per disk serves the snapshot disk on a
 * Unix socket in a private temp directory (mode 0700) that also holds the
 * password file (mode 0600, removed once nbdkit runs and again on close).
 */
export class VddkReader implements DiskReader {
  constructor(private readonly options: VddkReaderOptions = {}) {}

  open(disk: SnapshotDiskRef): Promise<OpenedDisk> {
    return startNbdkitVddk(this.options, {
      vcenter: disk.vcenter,
      vmMoref: disk.vmMoref,
      snapshotMoref: disk.snapshotMoref,
      fileName: disk.fileName,
      writable: false,
      what: `disk ${disk.deviceKey} of ${disk.vmName}`,
    });
  }
}

/**
 * Real vCenter, restore: `nbdkit vddk` serves the VM's disk itself (no
 * snapshot: the VM is powered off and the quick rollback's snapshot is gone
 * before writing starts) writable on a private Unix socket.
 */
export function openVddkWriter(
  options: VddkReaderOptions,
  disk: { vcenter: VCenterCredentials; vmMoref: string; vmName: string; deviceKey: number; fileName: string },
): Promise<OpenedDisk> {
  return startNbdkitVddk(options, { ...disk, writable: true, what: `disk ${disk.deviceKey} of ${disk.vmName} (writable, for a restore)` });
}

async function startNbdkitVddk(
  options: VddkReaderOptions,
  d: { vcenter: VCenterCredentials; vmMoref: string; snapshotMoref?: string; fileName: string; writable: boolean; what: string },
): Promise<OpenedDisk> {
  const url = new URL(d.vcenter.url);
  if (!d.vcenter.thumbprint) throw invalidArgument('nbdkit vddk needs vcenter.thumbprint (VDDK verifies the server by its SHA-1 thumbprint)');
  const dir = await mkdtemp(join(options.tmpRoot ?? tmpdir(), 'sendense-vddk-'));
  await chmod(dir, 0o700);
  const socket = join(dir, 'nbd.sock');
  const passwordFile = join(dir, 'password');
  let daemon: Awaited<ReturnType<DaemonStarter>> | undefined;
  try {
    await writeFile(passwordFile, d.vcenter.password, { mode: 0o600 });
    const args = nbdkitVddkArgs({
      socket,
      passwordFile,
      libdir: options.libdir,
      server: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port ? Number(url.port) : undefined,
      user: d.vcenter.username,
      thumbprint: d.vcenter.thumbprint,
      vmMoref: d.vmMoref,
      snapshotMoref: d.snapshotMoref,
      fileName: d.fileName,
      writable: d.writable,
      transports: options.transports,
    });
    const start: DaemonStarter = options.start ?? ((cmd, a) => Daemon.start(cmd, a));
    const started = await start(options.nbdkit ?? 'nbdkit', args);
    daemon = started;
    await waitFor(
      () => {
        if (!started.running) throw started.exitError(`nbdkit vddk for ${d.what}`);
        return existsSync(socket);
      },
      { timeoutMs: options.startTimeoutMs ?? 60000, message: `nbdkit vddk to serve ${d.fileName}` },
    );
    await rm(passwordFile, { force: true });
  } catch (err) {
    await daemon?.stop(5000).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const running = daemon;
  return {
    uri: `nbd+unix:///?socket=${socket}`,
    describe: `nbdkit vddk ${d.fileName} @ ${url.hostname} (${socket})`,
    close: async () => {
      await running.stop(10000).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export function createDiskReader(spec: DiskReaderSpec): DiskReader {
  switch (spec?.kind) {
    case 'standin-nbd':
      if (!spec.harnessUrl) throw invalidArgument('reader standin-nbd needs harnessUrl');
      return new StandInNbdReader(spec.harnessUrl);
    case 'vddk':
      return new VddkReader({ libdir: spec.libdir, transports: spec.transports });
    default:
      throw invalidArgument(`unknown disk reader ${JSON.stringify((spec as { kind?: unknown } | undefined)?.kind)}`);
  }
}
