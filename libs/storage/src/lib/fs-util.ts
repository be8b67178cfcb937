import { promises as fsp, constants as fsc } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';

/** fsync a file by path (data and metadata reach the disk). */
export async function fsyncFile(file: string): Promise<void> {
  const fh = await fsp.open(file, fsc.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsync a directory so that renames/creations/unlinks in it are durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Write a file so that a reader sees either the old or the new content, even
 * after a crash: temp name, fsync, rename over, fsync the directory. The temp
 * file is removed on failure (e.g. ENOSPC) so nothing half-written remains.
 */
export async function writeFileAtomic(file: string, data: string | Buffer): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(4).toString('hex')}.tmp`);
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(tmp, 'wx', 0o640);
    await fh.writeFile(data);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await fsp.rename(tmp, file);
  } catch (err) {
    await fh?.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dir);
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

export async function removeIfExists(p: string): Promise<boolean> {
  try {
    await fsp.unlink(p);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Bytes a file occupies on disk (sparse files count only allocated blocks). */
export async function allocatedBytes(file: string): Promise<number> {
  const st = await fsp.stat(file);
  return st.blocks * 512;
}

export async function readdirSafe(dir: string): Promise<string[]> {
  try {
    return await fsp.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}
