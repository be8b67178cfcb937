import { readFile } from 'node:fs/promises';
import { CommandError, isMountPoint, run } from '@sendense/process';

/**
 * Filesystem detection and strictly read-only mounting. The loop device is
 * already read-only; the options below additionally stop each driver from
 * even trying to write (journal replay / log recovery), which on a read-only
 * device would otherwise make the mount fail for a dirty filesystem.
 */

export interface DetectedFs {
  type: string;
  uuid?: string;
  label?: string;
}

export const BASE_MOUNT_OPTIONS = ['ro', 'nosuid', 'nodev', 'noexec'];

export type FsDriver = { kind: 'kernel'; fsType: string; options: string[] } | { kind: 'fusefat'; options: string[] };

export function parseBlkidExport(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

/** Probe the device content (not the blkid cache); null if no filesystem is recognized. */
export async function detectFilesystem(device: string): Promise<DetectedFs | null> {
  // blkid exits 2 when it recognizes nothing.
  const { stdout } = await run('blkid', ['-p', '-o', 'export', device], { okExitCodes: [0, 2], timeoutMs: 30000 });
  const tags = parseBlkidExport(stdout);
  if (!tags['TYPE'] || (tags['USAGE'] && tags['USAGE'] !== 'filesystem')) return tags['TYPE'] ? { type: tags['TYPE'] } : null;
  return { type: tags['TYPE'], uuid: tags['UUID'], label: tags['LABEL'] };
}

async function kernelHas(fsType: string): Promise<boolean> {
  try {
    const text = await readFile('/proc/filesystems', 'utf8');
    return text.split('\n').some((l) => l.trim().split(/\s+/).pop() === fsType);
  } catch {
    return false;
  }
}

/** The driver and options for a filesystem type, or null when unsupported. */
export async function driverFor(fsType: string): Promise<FsDriver | null> {
  switch (fsType) {
    case 'ext2':
    case 'ext3':
    case 'ext4':
      // The ext4 driver serves all three; noload = no journal replay.
      return { kind: 'kernel', fsType: 'ext4', options: [...BASE_MOUNT_OPTIONS, 'noload'] };
    case 'xfs':
      // norecovery = no log replay; nouuid so that two mounts of the same
      // restore point (same fs UUID) can coexist.
      return { kind: 'kernel', fsType: 'xfs', options: [...BASE_MOUNT_OPTIONS, 'norecovery', 'nouuid'] };
    case 'ntfs':
      // ntfs-3g (FUSE): ro never touches the journal ($LogFile).
      return { kind: 'kernel', fsType: 'ntfs-3g', options: [...BASE_MOUNT_OPTIONS] };
    case 'vfat':
      // FAT has no journal; the kernel driver when present, else fusefat
      // (containers and minimal kernels often lack the vfat module).
      if (await kernelHas('vfat')) return { kind: 'kernel', fsType: 'vfat', options: [...BASE_MOUNT_OPTIONS, 'utf8'] };
      return { kind: 'fusefat', options: [...BASE_MOUNT_OPTIONS] };
    default:
      return null;
  }
}

export async function mountFilesystem(device: string, dir: string, driver: FsDriver): Promise<void> {
  if (driver.kind === 'fusefat') {
    await run('fusefat', ['-o', driver.options.join(','), device, dir], { timeoutMs: 30000 });
    return;
  }
  await run('mount', ['-t', driver.fsType, '-o', driver.options.join(','), device, dir], { timeoutMs: 60000 });
}

/**
 * Unmount robustly: retry while busy (a reader may be closing), then fall back
 * to a lazy unmount so teardown never stalls on a stuck client.
 */
export async function unmountFilesystem(dir: string, { retries = 5, retryDelayMs = 100 } = {}): Promise<void> {
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (!(await isMountPoint(dir))) return;
    try {
      await run('umount', [dir], { timeoutMs: 30000 });
      return;
    } catch (err) {
      if (!(err instanceof CommandError)) throw err;
      if (/not mounted/i.test(err.stderr)) return;
      await new Promise((r) => setTimeout(r, retryDelayMs));
    }
  }
  if (await isMountPoint(dir)) await run('umount', ['-l', dir], { okExitCodes: [0, 32], timeoutMs: 30000 });
}
