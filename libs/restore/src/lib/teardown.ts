import { rm, rmdir } from 'node:fs/promises';
import type { Daemon } from '@sendense/process';
import { unmountFilesystem } from './filesystem';
import { releaseFuseFile, stopQsdByPid } from './fuse-export';
import { detachLoop, listLoops } from './loop-device';
import { removeState, type MountState } from './mount-state';
import { disconnectNbd } from './nbd-connect';

/**
 * Tear a mount down in reverse order of its construction: filesystems, loop
 * devices, the block export, directories, and last the state file (kept when
 * a step fails, so that orphan cleanup can retry). Every step runs even when
 * an earlier one failed: a half torn-down mount is worse than an error.
 */

export interface TeardownContext {
  stateDir: string;
  fuseDir: string;
  daemon?: Daemon;
}

async function rmdirIfPresent(dir: string): Promise<void> {
  try {
    await rmdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

export async function teardownState(state: MountState, ctx: TeardownContext): Promise<void> {
  const errors: unknown[] = [];
  const step = async (fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (err) {
      errors.push(err);
    }
  };
  const parts = [...state.partitions].reverse();
  for (const p of parts) {
    if (p.dir) {
      const dir = p.dir;
      await step(() => unmountFilesystem(dir));
      await step(() => rmdirIfPresent(dir));
    }
  }
  const backing = state.mode === 'fuse' ? state.fuseFile : state.nbdDevice;
  const loops = parts.map((p) => p.loopDevice).filter((d): d is string => !!d);
  if (loops.length) {
    await step(async () => {
      // Only detach devices still bound to our export: after a reboot a loop
      // number may belong to somebody else.
      const attached = await listLoops();
      for (const dev of loops) {
        const info = attached.find((l) => l.name === dev);
        if (info && info.backFile === backing) await step(() => detachLoop(dev));
      }
    });
  }
  if (state.mode === 'fuse') {
    const { daemon } = ctx;
    const pid = state.qsdPid;
    if (daemon) await step(() => daemon.stop(3000));
    else if (pid) await step(() => stopQsdByPid(pid, ctx.fuseDir));
    if (state.fuseFile) {
      const fuseFile = state.fuseFile;
      await step(() => releaseFuseFile(fuseFile));
      await step(() => rm(fuseFile, { force: true }));
    }
  } else if (state.nbdDevice) {
    const dev = state.nbdDevice;
    await step(() => disconnectNbd(dev));
  }
  await step(() => rmdirIfPresent(state.root));
  if (errors.length) {
    throw new AggregateError(errors, `teardown of mount ${state.mountId} incomplete: ${errors.map((e) => (e as Error).message).join('; ')}`);
  }
  await removeState(ctx.stateDir, state.mountId);
}
