import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { run, waitFor } from '@sendense/process';

/**
 * The qemu-nbd --connect path, for hosts that have the nbd kernel module
 * (/dev/nbd*). The kernel device then plays the role of the FUSE file: the
 * same loop-with-offset mapping is applied on top of it, so partition nodes
 * (which need max_part) are not required.
 */

export function nbdAvailable(): boolean {
  return existsSync('/dev/nbd0') && existsSync('/sys/block/nbd0');
}

async function nbdInUse(name: string): Promise<boolean> {
  // A connected device has a pid file; its size is non-zero.
  if (existsSync(`/sys/block/${name}/pid`)) return true;
  try {
    return Number((await readFile(`/sys/block/${name}/size`, 'utf8')).trim()) > 0;
  } catch {
    return true;
  }
}

async function freeNbdDevices(): Promise<string[]> {
  const names = (await readdir('/sys/block')).filter((n) => /^nbd\d+$/.test(n));
  names.sort((a, b) => Number(a.slice(3)) - Number(b.slice(3)));
  const free: string[] = [];
  for (const n of names) if (!(await nbdInUse(n))) free.push(`/dev/${n}`);
  return free;
}

export interface NbdConnection {
  device: string;
  pid?: number;
}

export async function connectNbd(
  imagePath: string,
  { format = 'qcow2', forceShare = false }: { format?: string; forceShare?: boolean } = {},
): Promise<NbdConnection> {
  let lastError: unknown = new Error('no free /dev/nbd* device');
  // Another process may grab the same free device between our check and the
  // connect; qemu-nbd then fails and we try the next one.
  for (const device of await freeNbdDevices()) {
    const args = [`--connect=${device}`, '--read-only', `--format=${format}`];
    if (forceShare) args.push('--force-share');
    args.push(imagePath);
    try {
      await run('qemu-nbd', args, { timeoutMs: 30000 });
      const name = device.slice('/dev/'.length);
      await waitFor(() => nbdInUse(name), { timeoutMs: 10000, message: `${device} to connect` });
      const pidText = await readFile(`/sys/block/${name}/pid`, 'utf8').catch(() => '');
      return { device, pid: pidText.trim() ? Number(pidText.trim()) : undefined };
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}

export async function disconnectNbd(device: string): Promise<void> {
  await run('qemu-nbd', ['--disconnect', device], { timeoutMs: 30000, okExitCodes: [0, 1] });
}
