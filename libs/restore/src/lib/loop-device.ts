import { run } from '@sendense/process';

/**
 * Read-only loop devices over the exported disk. The loop driver here creates
 * no partition nodes (losetup -P gives no loopNpK), so each partition gets its
 * own loop device with --offset/--sizelimit taken from the partition table.
 */

export interface LoopInfo {
  name: string;
  backFile: string;
  offset: number;
  sizeLimit: number;
  readOnly: boolean;
}

export async function attachLoop(backing: string, range?: { offset: number; size: number }): Promise<string> {
  const args = ['--read-only', '--find', '--show'];
  if (range) args.push('--offset', String(range.offset), '--sizelimit', String(range.size));
  args.push(backing);
  const { stdout } = await run('losetup', args, { timeoutMs: 30000 });
  const dev = stdout.trim();
  if (!/^\/dev\/loop\d+$/.test(dev)) throw new Error(`losetup printed an unexpected device name: ${JSON.stringify(dev)}`);
  return dev;
}

export async function detachLoop(device: string): Promise<void> {
  try {
    await run('losetup', ['--detach', device], { timeoutMs: 30000 });
  } catch (err) {
    // Already detached (or autocleared) is the state we wanted.
    const text = String((err as { stderr?: string }).stderr ?? (err as Error).message);
    if (/No such device or address|No such file|failed to use device/i.test(text)) return;
    throw err;
  }
}

interface LosetupJson {
  loopdevices?: Array<{ name: string; 'back-file'?: string; offset?: number | string; sizelimit?: number | string; ro?: boolean | string }>;
}

export async function listLoops(): Promise<LoopInfo[]> {
  const { stdout } = await run('losetup', ['--json', '--list'], { timeoutMs: 30000 });
  if (!stdout.trim()) return []; // losetup prints nothing when no device is attached
  const parsed = JSON.parse(stdout) as LosetupJson;
  return (parsed.loopdevices ?? []).map((d) => ({
    name: d.name,
    // The kernel appends " (deleted)" once the backing file is unlinked.
    backFile: (d['back-file'] ?? '').replace(/ \(deleted\)$/, ''),
    offset: Number(d.offset ?? 0),
    sizeLimit: Number(d.sizelimit ?? 0),
    readOnly: d.ro === true || d.ro === '1',
  }));
}
