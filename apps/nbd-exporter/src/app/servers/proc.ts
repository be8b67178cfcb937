import { readdir, readFile, readlink } from 'node:fs/promises';
import { waitFor } from '@sendense/process';

/**
 * Process inspection through /proc. The NBD servers run daemonized (they
 * outlive a crashed exporter on purpose, so a copy in flight survives and
 * the restarted exporter can adopt them), so they are not our children:
 * they are found, checked and signalled by pid.
 */

export interface ProcInfo {
  pid: number;
  argv: string[];
}

/** Alive means present and not a zombie (in containers, pid 1 may never reap). */
export async function isAlive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X' && state !== '';
  } catch {
    return false;
  }
}

export async function readArgv(pid: number): Promise<string[] | null> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`);
    if (raw.length === 0) return null;
    return raw.toString('utf8').replace(/\0$/, '').split('\0');
  } catch {
    return null;
  }
}

/** All live processes whose argument list contains `marker` (e.g. the state dir). */
export async function findProcesses(marker: string): Promise<ProcInfo[]> {
  const found: ProcInfo[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const argv = await readArgv(pid);
    if (argv && argv.some((a) => a.includes(marker)) && (await isAlive(pid))) found.push({ pid, argv });
  }
  return found;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/**
 * SIGTERM, then SIGKILL after graceMs. qemu-nbd flushes the image and
 * nbd-server fsyncs and ends its connection children on SIGTERM, so the
 * grace period is what keeps the data.
 */
export async function terminate(pid: number, graceMs = 5000): Promise<void> {
  if (!(await isAlive(pid))) return;
  signal(pid, 'SIGTERM');
  try {
    await waitFor(async () => !(await isAlive(pid)), { timeoutMs: graceMs, intervalMs: 25, message: `pid ${pid} to exit` });
  } catch {
    signal(pid, 'SIGKILL');
    await waitFor(async () => !(await isAlive(pid)), { timeoutMs: 2000, intervalMs: 25, message: `pid ${pid} to die` });
  }
}

async function listeningInodes(port: number): Promise<Set<string>> {
  const inodes = new Set<string>();
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = await readFile(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // f[1] local address:port, f[3] state (0A = LISTEN), f[9] inode
      if (f.length > 9 && f[3] === '0A' && f[1].endsWith(`:${hexPort}`)) inodes.add(f[9]);
    }
  }
  return inodes;
}

/**
 * True when `pid` itself holds the listening socket of `port`. A plain
 * connect test would be fooled by another process on that port (nbd-server
 * exits 0 and dies later when its bind fails).
 */
export async function pidListensOn(pid: number, port: number): Promise<boolean> {
  const inodes = await listeningInodes(port);
  if (inodes.size === 0) return false;
  let fds: string[];
  try {
    fds = await readdir(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  for (const fd of fds) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m && inodes.has(m[1])) return true;
  }
  return false;
}

export async function readPidFile(path: string): Promise<number | null> {
  try {
    const n = Number((await readFile(path, 'utf8')).trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}
