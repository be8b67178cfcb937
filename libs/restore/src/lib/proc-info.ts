import { readFile, readdir } from 'node:fs/promises';

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
      return {
        source: unescapeMountField(source),
        target: unescapeMountField(target),
        fsType,
        options,
      };
    });
}

export async function isMountPoint(path: string): Promise<boolean> {
  return (await readProcMounts()).some((m) => m.target === path);
}

/** Whether a process exists (signal 0 probes without delivering anything). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The argv of a process, or null when it is gone. */
export async function processArgv(pid: number): Promise<string[] | null> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    if (!raw) return null; // zombie or kernel thread
    return raw.replace(/\0$/, '').split('\0');
  } catch {
    return null;
  }
}

/** All processes whose argv matches a predicate (a scan of /proc). */
export async function findProcesses(match: (argv: string[]) => boolean): Promise<number[]> {
  const found: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    const argv = await processArgv(pid);
    if (argv && match(argv)) found.push(pid);
  }
  return found;
}
