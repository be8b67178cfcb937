import { readFileSync } from 'node:fs';
import type { MountState } from './mount-state';

/**
 * Whether a mount still is what the API says it is. A partition's file
 * system can vanish under the service (unmounted from outside, its FUSE
 * daemon killed): the directory is then empty and a browse answered "no
 * such file or directory: /" while the mount was still listed. Cheap and
 * synchronous (one read of /proc/self/mounts), so every lookup checks.
 */

const unescape = (field: string) => field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));

export function mountedTargets(text: string = readFileSync('/proc/self/mounts', 'utf8')): Set<string> {
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    const target = line.split(' ')[1];
    if (target) out.add(unescape(target));
  }
  return out;
}

/** What is missing of the mount, in words; empty when it is whole. */
export function mountProblems(state: MountState, targets: Set<string> = mountedTargets(), daemonAlive?: boolean): string[] {
  const problems: string[] = [];
  for (const p of state.partitions) {
    if (p.mounted && p.dir && !targets.has(p.dir)) problems.push(`the file system of partition ${p.name} is no longer mounted at ${p.dir}`);
  }
  // The Daemon object learns of a SIGKILL only when Node handles the child's exit: /proc knows at once.
  const alive = daemonAlive !== false && (state.mode === 'fuse' && state.qsdPid ? pidAlive(state.qsdPid) : true);
  if (!alive) problems.push('its block export (qemu-storage-daemon) is gone');
  if (state.mode === 'fuse' && state.fuseFile && !targets.has(state.fuseFile)) problems.push(`its FUSE export ${state.fuseFile} is no longer mounted`);
  return problems;
}

/** Synchronous liveness (the health check reads it on every lookup): a zombie is not alive. */
function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
