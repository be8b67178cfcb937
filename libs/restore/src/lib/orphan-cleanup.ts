import { readdir, rm, rmdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { findProcesses, readProcMounts } from '@sendense/process';
import { unmountFilesystem } from './filesystem';
import { isOurQsd, releaseFuseFile, stopQsdByPid } from './fuse-export';
import { detachLoop, listLoops } from './loop-device';
import { ownerAlive, readAllStates } from './mount-state';
import { teardownState } from './teardown';

/**
 * Crash recovery. The state files say precisely what a dead service held; the
 * scans of /proc/mounts, `losetup --list` and /proc/<pid>/cmdline catch what a
 * crash left before its state file was written (or after it was lost). Only
 * things that are unambiguously ours are touched: mount points below
 * <mountRoot>/<uuid>/, loop devices backed by files in our FUSE directory, and
 * qemu-storage-daemon processes exporting into that directory.
 */

export interface OrphanCleanupOptions {
  mountRoot: string;
  stateDir: string;
  fuseDir: string;
  /** Mounts of the running service, never touched. */
  keepMountIds: ReadonlySet<string>;
  log?: (message: string) => void;
}

export interface OrphanReport {
  states: string[];
  mounts: string[];
  loops: string[];
  processes: number[];
  fuseFiles: string[];
  errors: string[];
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function mountIdOfFuseFile(path: string): string {
  return basename(path).replace(/\.img$/, '');
}

export async function cleanupOrphans(options: OrphanCleanupOptions): Promise<OrphanReport> {
  const { mountRoot, stateDir, fuseDir } = options;
  const log = options.log ?? (() => undefined);
  const keep = new Set(options.keepMountIds);
  const report: OrphanReport = { states: [], mounts: [], loops: [], processes: [], fuseFiles: [], errors: [] };
  const attempt = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (err) {
      report.errors.push(`${what}: ${(err as Error).message}`);
      log(`orphan cleanup: ${what} failed: ${(err as Error).message}`);
    }
  };

  // 1. What state files describe.
  for (const state of await readAllStates(stateDir)) {
    if (keep.has(state.mountId)) continue;
    if (state.ownerPid !== process.pid && (await ownerAlive(state))) {
      // Another live service instance owns it: not an orphan.
      keep.add(state.mountId);
      continue;
    }
    await attempt(`teardown of ${state.mountId}`, async () => {
      await teardownState(state, { stateDir, fuseDir });
      report.states.push(state.mountId);
    });
  }

  const rootPrefix = `${mountRoot}/`;
  const fusePrefix = `${fuseDir}/`;
  const orphanId = (id: string) => UUID_RE.test(id) && !keep.has(id.toLowerCase());

  // 2. Filesystems still mounted below the mount root, deepest first.
  const mounts = (await readProcMounts())
    .map((m) => m.target)
    .filter((t) => t.startsWith(rootPrefix) && orphanId(t.slice(rootPrefix.length).split('/')[0] ?? ''))
    .sort((a, b) => b.split('/').length - a.split('/').length);
  for (const target of mounts) {
    await attempt(`umount ${target}`, async () => {
      await unmountFilesystem(target);
      report.mounts.push(target);
    });
  }

  // 3. Loop devices over our FUSE export files.
  await attempt('loop scan', async () => {
    for (const loop of await listLoops()) {
      if (!loop.backFile.startsWith(fusePrefix) || !orphanId(mountIdOfFuseFile(loop.backFile))) continue;
      await attempt(`detach ${loop.name}`, async () => {
        await detachLoop(loop.name);
        report.loops.push(loop.name);
      });
    }
  });

  // 4. qemu-storage-daemon processes exporting into our FUSE directory.
  for (const { pid, argv } of await findProcesses((a) => isOurQsd(a, fuseDir))) {
    const kept = [...keep].some((id) => argv.some((a) => a.includes(`${id}.img`)));
    if (kept) continue;
    await attempt(`stop qemu-storage-daemon ${pid}`, async () => {
      if (await stopQsdByPid(pid, fuseDir)) report.processes.push(pid);
    });
  }

  // 5. FUSE export files (mounted by a dead daemon, or just left over).
  for (const m of await readProcMounts()) {
    if (m.target.startsWith(fusePrefix) && orphanId(mountIdOfFuseFile(m.target))) {
      await attempt(`release ${m.target}`, () => releaseFuseFile(m.target));
    }
  }
  const fuseNames = await readdir(fuseDir).catch(() => [] as string[]);
  for (const name of fuseNames) {
    const file = join(fuseDir, name);
    if (!orphanId(mountIdOfFuseFile(file))) continue;
    await attempt(`remove ${file}`, async () => {
      await rm(file, { force: true });
      report.fuseFiles.push(file);
    });
  }

  // 6. Empty mount directories. rmdir only: never recursive delete under a
  // path that might still hold a mounted guest filesystem.
  const rootNames = await readdir(mountRoot).catch(() => [] as string[]);
  for (const id of rootNames) {
    if (!orphanId(id)) continue;
    const dir = join(mountRoot, id);
    const children = await readdir(dir).catch(() => [] as string[]);
    for (const c of children) await attempt(`rmdir ${join(dir, c)}`, () => rmdir(join(dir, c)));
    await attempt(`rmdir ${dir}`, () => rmdir(dir));
  }
  const cleaned = report.states.length + report.mounts.length + report.loops.length + report.processes.length;
  if (cleaned) log(`orphan cleanup: ${JSON.stringify(report)}`);
  return report;
}
