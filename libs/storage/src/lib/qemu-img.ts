import * as path from 'node:path';
import { run, runJson, CommandError } from '@sendense/process';
import { InsufficientSpace, StorageIoError, isEnospc } from './errors';

/**
 * Thin wrappers over qemu-img. Backing files are always given as a name
 * relative to the image's own directory, with the format stated, so that a
 * repository can be moved and qemu never probes a format.
 * Errors are re-thrown as StorageIoError whose message is path free; the
 * command line and stderr go to `detail`.
 */

const QEMU_IMG = 'qemu-img';
const TIMEOUT_MS = 6 * 60 * 60 * 1000;

function wrap(op: string, file: string, err: unknown): never {
  if (err instanceof CommandError) {
    if (isEnospc(err)) {
      throw new InsufficientSpace(0, 0, op, { localPath: file, detail: err.message, cause: err });
    }
    throw new StorageIoError(`${op} failed`, { localPath: file, detail: err.message, cause: err });
  }
  throw err;
}

export interface QemuImageInfo {
  'virtual-size': number;
  'actual-size'?: number;
  format: string;
  'backing-filename'?: string;
  'backing-filename-format'?: string;
  'full-backing-filename'?: string;
  'dirty-flag'?: boolean;
  'cluster-size'?: number;
}

export interface QemuCheckResult {
  /** True when qemu-img found no corruption (leaks alone are harmless). */
  clean: boolean;
  corruptions: number;
  leaks: number;
  checkErrors: number;
  imageEndOffset?: number;
  raw: Record<string, unknown>;
}

export interface MapExtent {
  start: number;
  length: number;
  depth: number;
  present?: boolean;
  zero: boolean;
  data: boolean;
  offset?: number;
}

export async function createImage(file: string, virtualSize: number, backingName?: string | null): Promise<void> {
  const args = ['create', '-q', '-f', 'qcow2'];
  if (backingName) {
    if (backingName.includes('/')) throw new Error('backing name must be relative to the image directory');
    args.push('-F', 'qcow2', '-b', backingName);
  }
  args.push(path.basename(file), String(virtualSize));
  try {
    // cwd = image dir: qemu resolves the relative backing name from there too.
    await run(QEMU_IMG, args, { cwd: path.dirname(file), timeoutMs: 60_000 });
  } catch (err) {
    wrap('creating the image', file, err);
  }
}

export async function imageInfo(file: string): Promise<QemuImageInfo> {
  try {
    // -U: a read-only look must work while a writer (qemu-nbd) holds the image.
    return await runJson<QemuImageInfo>(QEMU_IMG, ['info', '-U', '--output=json', '-f', 'qcow2', file], {
      timeoutMs: 60_000,
    });
  } catch (err) {
    wrap('reading image information', file, err);
  }
}

export async function checkImage(file: string): Promise<QemuCheckResult> {
  let out: { stdout: string; exitCode: number };
  try {
    // Exit 2 = corruptions, 3 = leaks only: both still print the JSON report.
    out = await run(QEMU_IMG, ['check', '--output=json', '-f', 'qcow2', file], {
      okExitCodes: [0, 2, 3],
      timeoutMs: TIMEOUT_MS,
    });
  } catch (err) {
    if (err instanceof CommandError && err.exitCode === 1 && /lock/i.test(err.stderr)) {
      // qemu's image locking: a writer (qemu-nbd) still has it open.
      throw new StorageIoError('the image is still open by another process (close the NBD export first)', {
        localPath: file,
        detail: err.message,
        cause: err,
      });
    }
    if (err instanceof CommandError && err.exitCode === 1) {
      // Exit 1: the check could not run; qemu-img could not even open it.
      return { clean: false, corruptions: 1, leaks: 0, checkErrors: 1, raw: { error: err.stderr.trim() } };
    }
    wrap('checking the image', file, err);
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(out.stdout) as Record<string, unknown>;
  } catch {
    return { clean: false, corruptions: 1, leaks: 0, checkErrors: 1, raw: { stdout: out.stdout } };
  }
  const num = (k: string) => (typeof raw[k] === 'number' ? (raw[k] as number) : 0);
  const corruptions = num('corruptions');
  const checkErrors = num('check-errors');
  return {
    clean: out.exitCode !== 2 && corruptions === 0 && checkErrors === 0,
    corruptions,
    leaks: num('leaks'),
    checkErrors,
    imageEndOffset: typeof raw['image-end-offset'] === 'number' ? (raw['image-end-offset'] as number) : undefined,
    raw,
  };
}

/**
 * Map of the image's own layer: the backing chain is cut off (backing: null),
 * so the result describes exactly what this file holds.
 */
export async function mapOwnLayer(file: string): Promise<MapExtent[]> {
  const spec = `json:${JSON.stringify({
    driver: 'qcow2',
    backing: null,
    file: { driver: 'file', filename: path.resolve(file) },
  })}`;
  try {
    return await runJson<MapExtent[]>(QEMU_IMG, ['map', '-U', '--output=json', spec], { timeoutMs: TIMEOUT_MS });
  } catch (err) {
    wrap('mapping the image', file, err);
  }
}

/** Header-only change of the backing file; valid only when content is identical. */
export async function rebaseUnsafe(file: string, backingName: string): Promise<void> {
  try {
    await run(QEMU_IMG, ['rebase', '-u', '-f', 'qcow2', '-F', 'qcow2', '-b', backingName, path.basename(file)], {
      cwd: path.dirname(file),
      timeoutMs: 60_000,
    });
  } catch (err) {
    wrap('rebasing the image', file, err);
  }
}

/**
 * Safe rebase: copies into `file` every cluster where the old and new backing
 * chains differ, so the guest view of `file` is unchanged. `null` = no backing
 * (the image becomes standalone). Only ever run on a private temp copy.
 */
export async function rebaseSafe(file: string, backingName: string | null): Promise<void> {
  const args = ['rebase', '-f', 'qcow2'];
  if (backingName) args.push('-F', 'qcow2', '-b', backingName);
  else args.push('-b', '');
  args.push(path.basename(file));
  try {
    await run(QEMU_IMG, args, { cwd: path.dirname(file), timeoutMs: TIMEOUT_MS });
  } catch (err) {
    wrap('merging images', file, err);
  }
}

/** Flatten the chain of `src` into a standalone qcow2 `dst`. */
export async function convertStandalone(src: string, dst: string): Promise<void> {
  try {
    await run(QEMU_IMG, ['convert', '-f', 'qcow2', '-O', 'qcow2', src, dst], { timeoutMs: TIMEOUT_MS });
  } catch (err) {
    wrap('merging images', dst, err);
  }
}

/** True when the guest-visible content of two images is identical. */
export async function compareImages(a: string, b: string, formatA = 'qcow2', formatB = 'qcow2'): Promise<boolean> {
  try {
    await run(QEMU_IMG, ['compare', '-U', '-q', '-f', formatA, '-F', formatB, a, b], { timeoutMs: TIMEOUT_MS });
    return true;
  } catch (err) {
    if (err instanceof CommandError && err.exitCode === 1) return false;
    wrap('comparing images', a, err);
  }
}

export async function qemuImgVersion(): Promise<string> {
  const r = await run(QEMU_IMG, ['--version'], { timeoutMs: 10_000 });
  return r.stdout.split('\n')[0] ?? '';
}
