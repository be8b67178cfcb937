import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon, run, runJson, waitFor } from '@sendense/process';

/**
 * Test targets and checks (tests only): QCOW2 files served writable by
 * qemu-nbd on a Unix socket, as the nbd-exporter serves restore points.
 */

export interface NbdTarget {
  uri: string;
  file: string;
  stop(): Promise<void>;
}

async function serve(command: string, args: string[], socket: string, what: string): Promise<Daemon> {
  const daemon = await Daemon.start(command, args);
  try {
    await waitFor(
      () => {
        if (!daemon.running) throw daemon.exitError(what);
        return existsSync(socket);
      },
      { timeoutMs: 15000, message: what },
    );
  } catch (err) {
    await daemon.stop(2000);
    throw err;
  }
  return daemon;
}

/** A new QCOW2 (optionally an overlay on `backing`) served writable by `qemu-nbd -f qcow2`. */
export async function qcow2Target(dir: string, name: string, sizeBytes: number, backing?: string): Promise<NbdTarget> {
  const file = join(dir, `${name}.qcow2`);
  const create = ['create', '-q', '-f', 'qcow2'];
  if (backing) create.push('-b', backing, '-F', 'qcow2');
  await run('qemu-img', [...create, file, String(sizeBytes)]);
  const socket = join(dir, `${name}.sock`);
  const daemon = await serve(
    'qemu-nbd',
    ['-f', 'qcow2', '-k', socket, '-x', 'disk', '-e', '8', '-t', '--cache=writeback', file],
    socket,
    `qemu-nbd for ${name}`,
  );
  return { uri: `nbd+unix:///disk?socket=${socket}`, file, stop: () => daemon.stop(5000) };
}

/** A RAM disk whose every write and zero request takes `delayMs`: a copy into it is slow. */
export async function slowTarget(dir: string, name: string, sizeBytes: number, delayMs: number): Promise<NbdTarget> {
  const socket = join(dir, `${name}.sock`);
  const daemon = await serve(
    'nbdkit',
    ['-U', socket, '--foreground', '--exit-with-parent', '--filter=delay', 'memory', `size=${sizeBytes}`, `wdelay=${delayMs}ms`],
    socket,
    `nbdkit for ${name}`,
  );
  return { uri: `nbd+unix:///?socket=${socket}`, file: '', stop: () => daemon.stop(5000) };
}

/** `qemu-img compare` of an image (with its backing chain) against an NBD export; true when identical. */
export async function sameContent(image: string, nbdUri: string): Promise<{ identical: boolean; output: string }> {
  const r = await run('qemu-img', ['compare', '-U', '-f', 'qcow2', '-F', 'raw', image, nbdUri], { okExitCodes: [0, 1] });
  return { identical: r.exitCode === 0, output: (r.stdout + r.stderr).trim() };
}

/** Bytes of an image chain as the guest would see them. */
export async function readImage(dir: string, image: string, offset: number, length: number): Promise<Buffer> {
  const raw = join(dir, `read-${Date.now()}-${Math.random().toString(16).slice(2)}.raw`);
  await run('qemu-img', ['convert', '-U', '-O', 'raw', image, raw]);
  return readFileSync(raw).subarray(offset, offset + length);
}

/** Bytes stored in the top layer of a QCOW2 (data or zero clusters), not in its backing files. */
export async function topLayerBytes(image: string): Promise<number> {
  const map = await runJson<{ start: number; length: number; depth: number; data: boolean; zero: boolean; present?: boolean }[]>('qemu-img', [
    'map',
    '-U',
    '--output=json',
    image,
  ]);
  return map.filter((m) => m.depth === 0 && (m.data || (m.zero && m.present !== false))).reduce((n, m) => n + m.length, 0);
}

export const MiB = 1024 * 1024;

/** A scratch directory for one test suite, removed by the returned cleanup. */
export function scratchDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `sendense-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
