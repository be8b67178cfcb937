import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlockMode } from '@sendense/contracts';
import { processStartTime } from '@sendense/process';

/**
 * What a mount holds, persisted after every step of mounting, so that after a
 * crash (kill -9, power loss of the service) the next start knows exactly
 * which mounts, loop devices and daemons to remove.
 */

export interface PartitionState {
  name: string;
  index: number | null;
  offsetBytes: number;
  sizeBytes: number;
  fsType: string | null;
  loopDevice?: string;
  /** Host directory where it is mounted (set once the mount succeeded). */
  dir?: string;
  mounted: boolean;
  error?: string;
}

export type { BlockMode } from '@sendense/contracts';

export interface MountState {
  version: 1;
  mountId: string;
  imagePath: string;
  chain: string[];
  mode: BlockMode;
  root: string;
  ownerPid: number;
  /** /proc/<pid>/stat start time, so a reused pid is not taken for the owner. */
  ownerStartTime: string | null;
  createdAt: string;
  fuseFile?: string;
  qsdPid?: number;
  nbdDevice?: string;
  nbdPid?: number;
  virtualSize?: number;
  partitionTable: string | null;
  partitions: PartitionState[];
}

export function stateFile(stateDir: string, mountId: string): string {
  return join(stateDir, `${mountId}.json`);
}

/** Atomic replace: a crash mid-write leaves the old or the new state, never half. */
export async function writeState(stateDir: string, state: MountState): Promise<void> {
  await mkdir(stateDir, { recursive: true });
  const target = stateFile(stateDir, state.mountId);
  const tmp = `${target}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, target);
}

export async function removeState(stateDir: string, mountId: string): Promise<void> {
  await rm(stateFile(stateDir, mountId), { force: true });
}

export async function readAllStates(stateDir: string): Promise<MountState[]> {
  let names: string[];
  try {
    names = await readdir(stateDir);
  } catch {
    return [];
  }
  const states: MountState[] = [];
  for (const name of names) {
    if (name.endsWith('.tmp')) {
      await rm(join(stateDir, name), { force: true });
      continue;
    }
    if (!name.endsWith('.json')) continue;
    try {
      const parsed = JSON.parse(await readFile(join(stateDir, name), 'utf8')) as MountState;
      if (parsed.version === 1 && parsed.mountId) states.push(parsed);
    } catch {
      // An unreadable state file cannot guide cleanup; the /proc scans still do.
    }
  }
  return states;
}

/** Whether the process that wrote a state is still the same live process (a zombie is not). */
export async function ownerAlive(state: MountState): Promise<boolean> {
  const now = await processStartTime(state.ownerPid);
  return now !== null && now === state.ownerStartTime;
}
