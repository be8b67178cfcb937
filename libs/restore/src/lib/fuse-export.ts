import { Daemon, isAlive, isMountPoint, readArgv, run, terminate, waitFor } from '@sendense/process';

/**
 * A QCOW2 chain exposed as one raw, read-only file through a
 * qemu-storage-daemon FUSE export. This is how a restore point becomes a block
 * device on hosts without /dev/nbd*: the file is then attached to loop devices.
 *
 * Read-only end to end: the qcow2 node and its file node are opened
 * read-only (backing files are opened read-only by qemu anyway) and the export
 * is writable=off, so neither a journal replay nor a stray write can reach a
 * restore point.
 */

export const QSD_BINARY = 'qemu-storage-daemon';

export interface FuseExportOptions {
  /** Image format of the top of the chain (restore points are qcow2). */
  format?: 'qcow2' | 'raw';
  /**
   * Open without taking qemu's image locks. Off by default: the shared read
   * lock we hold makes a concurrent `qemu-img commit` (consolidation) of a
   * mounted restore point fail instead of changing data under the mount.
   */
  forceShare?: boolean;
  readyTimeoutMs?: number;
}

export interface FuseExport {
  fuseFile: string;
  pid: number;
  daemon: Daemon;
}

export function qsdArgs(imagePath: string, fuseFile: string, options: FuseExportOptions = {}): string[] {
  const blockdev: Record<string, unknown> = {
    driver: options.format ?? 'qcow2',
    'node-name': 'restore-disk',
    'read-only': true,
    file: { driver: 'file', filename: imagePath, 'read-only': true },
  };
  if (options.forceShare) blockdev['force-share'] = true;
  // JSON syntax for both options: a path with ',' would break qemu's key=value
  // syntax, and JSON needs no escaping rules of our own.
  const exportOpts = {
    type: 'fuse',
    id: 'restore-export',
    'node-name': 'restore-disk',
    mountpoint: fuseFile,
    writable: false,
  };
  return ['--blockdev', JSON.stringify(blockdev), '--export', JSON.stringify(exportOpts)];
}

/** Whether argv is a qemu-storage-daemon exporting onto a file in fuseDir. */
export function isOurQsd(argv: readonly string[], fuseDir: string): boolean {
  if (!argv[0] || !argv[0].endsWith(QSD_BINARY)) return false;
  const dir = fuseDir.endsWith('/') ? fuseDir : `${fuseDir}/`;
  return argv.some((a) => a.includes(JSON.stringify(dir).slice(1, -1)));
}

/** Start the daemon and wait until the FUSE file is mounted. The caller created fuseFile. */
export async function startFuseExport(imagePath: string, fuseFile: string, options: FuseExportOptions = {}): Promise<FuseExport> {
  // detached: a Ctrl-C to the service must not kill the export under live
  // mounts; teardown (or orphan cleanup after a crash) stops it explicitly.
  const daemon = await Daemon.start(QSD_BINARY, qsdArgs(imagePath, fuseFile, options), { detached: true });
  try {
    await waitFor(
      async () => {
        if (!daemon.running) throw daemon.exitError('qemu-storage-daemon stopped before its FUSE export was ready');
        return isMountPoint(fuseFile);
      },
      { timeoutMs: options.readyTimeoutMs ?? 15000, intervalMs: 10, message: `FUSE export on ${fuseFile}` },
    );
  } catch (err) {
    await daemon.stop(2000);
    throw err;
  }
  daemon.child.unref();
  return { fuseFile, pid: daemon.pid ?? -1, daemon };
}

/** Make sure a FUSE export file is no longer a mount point (after its daemon died). */
export async function releaseFuseFile(fuseFile: string): Promise<void> {
  if (!(await isMountPoint(fuseFile))) return;
  // Lazy: a dead FUSE server leaves a mount whose accesses fail; detach it anyway.
  await run('umount', ['-l', fuseFile], { okExitCodes: [0, 32], timeoutMs: 10000 });
}

/**
 * Stop a daemon known only by pid (after a crash of its parent). The argv is
 * checked first so that a reused pid of an unrelated process is never killed.
 */
export async function stopQsdByPid(pid: number, fuseDir: string, graceMs = 3000): Promise<boolean> {
  const argv = await readArgv(pid);
  if (!argv || !isOurQsd(argv, fuseDir) || !(await isAlive(pid))) return false;
  // SIGTERM, SIGKILL after graceMs; a zombie counts as stopped (it holds no FUSE mount).
  await terminate(pid, graceMs).catch(() => undefined);
  return true;
}
