import { readdir, readFile, readlink } from 'node:fs/promises';
import { waitFor } from './process-runner';

/**
 * The one reader of /proc (Linux). Servers that outlive their parent on
 * purpose (NBD servers of the nbd-exporter, FUSE exports of the
 * restore-service) are not our children after a restart: they are found,
 * checked and signalled by pid, through these functions.
 *
 * Liveness: a zombie ('Z') or dead ('X') process is NOT alive. It holds no
 * socket, no file and no mount any more; it only waits to be reaped, which
 * in a container whose pid 1 never reaps may be forever. `kill(pid, 0)`
 * succeeds on a zombie, so it is never used to answer "is it running".
 */

export interface ProcInfo {
  pid: number;
  argv: string[];
}

export interface ProcStat {
  pid: number;
  /** One letter: R running, S sleeping, D disk sleep, T stopped, Z zombie, X dead, ... */
  state: string;
  /** Field 22, clock ticks after boot: with the pid, identifies one process (pids are reused). */
  startTime: string;
}

/** /proc/<pid>/stat, parsed; null when there is no such process. */
export async function readProcStat(pid: number): Promise<ProcStat | null> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // "pid (comm) state ppid ...": comm may hold spaces and ')', so split after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = fields[0] ?? '';
  if (!state) return null;
  return { pid, state, startTime: fields[19] ?? '' };
}

/** Present and neither a zombie nor dead. */
export async function isAlive(pid: number): Promise<boolean> {
  const stat = await readProcStat(pid);
  return stat !== null && stat.state !== 'Z' && stat.state !== 'X';
}

/** Start time of a live process (see ProcStat.startTime), or null when it is gone or a zombie. */
export async function processStartTime(pid: number): Promise<string | null> {
  const stat = await readProcStat(pid);
  if (!stat || stat.state === 'Z' || stat.state === 'X') return null;
  return stat.startTime || null;
}

/** The argv of a process; null when it is gone, a zombie or a kernel thread (empty cmdline). */
export async function readArgv(pid: number): Promise<string[] | null> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`);
    if (raw.length === 0) return null;
    return raw.toString('utf8').replace(/\0$/, '').split('\0');
  } catch {
    return null;
  }
}

/**
 * All live processes (not this one, not zombies) whose argv contains
 * `match` as a substring of one argument, or satisfies `match`.
 */
export async function findProcesses(match: string | ((argv: string[]) => boolean)): Promise<ProcInfo[]> {
  const test = typeof match === 'string' ? (argv: string[]) => argv.some((a) => a.includes(match)) : match;
  const found: ProcInfo[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const argv = await readArgv(pid);
    if (argv && test(argv) && (await isAlive(pid))) found.push({ pid, argv });
  }
  return found;
}

/** Send a signal; false when the process was already gone. */
export function signalPid(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    return false;
  }
}

/**
 * SIGTERM, then SIGKILL after graceMs; resolves once the process is no
 * longer alive (a zombie counts as ended). Servers flush on SIGTERM
 * (qemu-nbd the image, nbd-server its connections), so the grace period is
 * what keeps the data.
 */
export async function terminate(pid: number, graceMs = 5000): Promise<void> {
  if (!(await isAlive(pid))) return;
  signalPid(pid, 'SIGTERM');
  try {
    await waitFor(async () => !(await isAlive(pid)), { timeoutMs: graceMs, intervalMs: 20, message: `pid ${pid} to exit` });
  } catch {
    signalPid(pid, 'SIGKILL');
    await waitFor(async () => !(await isAlive(pid)), { timeoutMs: 5000, intervalMs: 20, message: `pid ${pid} to die after SIGKILL` });
  }
}

/** TCP states of /proc/net/tcp: 0A LISTEN, 01 ESTABLISHED. */
async function listeningInodes(port: number, state = '0A'): Promise<Set<string>> {
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
      // f[1] local address:port, f[3] state, f[9] inode
      const [local, inode] = [f[1], f[9]];
      if (local !== undefined && inode !== undefined && f[3] === state && local.endsWith(`:${hexPort}`)) inodes.add(inode);
    }
  }
  return inodes;
}

/** Inodes of the sockets `pid` holds open. */
async function socketInodes(pid: number): Promise<Set<string>> {
  const owned = new Set<string>();
  let fds: string[];
  try {
    fds = await readdir(`/proc/${pid}/fd`);
  } catch {
    return owned;
  }
  for (const fd of fds) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m?.[1] !== undefined) owned.add(m[1]);
  }
  return owned;
}

/**
 * How many established connections `pid` holds on its local `port`: the
 * clients of a server (idle detection of NBD exports). 0 when none or when
 * the process is gone.
 */
export async function pidConnectionCount(pid: number, port: number): Promise<number> {
  const established = await listeningInodes(port, '01');
  if (established.size === 0) return 0;
  const owned = await socketInodes(pid);
  let n = 0;
  for (const inode of established) if (owned.has(inode)) n++;
  return n;
}

/**
 * True when `pid` itself holds the listening socket of `port`. A plain
 * connect test would be fooled by another process on that port (nbd-server
 * exits 0 and dies later when its bind fails).
 */
export async function pidListensOn(pid: number, port: number): Promise<boolean> {
  const inodes = await listeningInodes(port);
  if (inodes.size === 0) return false;
  const owned = await socketInodes(pid);
  return [...inodes].some((inode) => owned.has(inode));
}

/** A pid written by a daemon (qemu-nbd --pid-file, nbd-server's pid file); null when absent or not a pid. */
export async function readPidFile(path: string): Promise<number | null> {
  try {
    const n = Number((await readFile(path, 'utf8')).trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/** One line of /proc/mounts, with the octal escapes (\040 for space) decoded. */
export interface ProcMount {
  source: string;
  target: string;
  fsType: string;
  options: string;
}

function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export async function readProcMounts(): Promise<ProcMount[]> {
  const text = await readFile('/proc/mounts', 'utf8');
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((line) => {
      const [source = '', target = '', fsType = '', options = ''] = line.split(' ');
      return { source: unescapeMountField(source), target: unescapeMountField(target), fsType, options };
    });
}

export async function isMountPoint(path: string): Promise<boolean> {
  return (await readProcMounts()).some((m) => m.target === path);
}
