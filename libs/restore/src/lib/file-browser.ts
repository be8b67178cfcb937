import { lstat, open, readdir, readlink } from 'node:fs/promises';
import { constants, type Stats } from 'node:fs';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import type { EntryType, FileEntry, ListPage } from '@sendense/contracts';
import { NotADirectory, NotAFile, RangeNotSatisfiable } from './errors';
import { resolveInside } from './safe-path';
import { createTarStream } from './tar-stream';

/**
 * Browsing and reading files of a mount. Every user path goes through
 * resolveInside (no '..', no NUL, no symlink leaving the mount); symlinks are
 * listed with their target but only followed when they stay inside.
 */

// One definition of the listing shapes: the restore-service contract.
export type { EntryType, FileEntry, ListPage } from '@sendense/contracts';

/** Inclusive byte range; both ends optional. */
export interface ByteRange {
  start?: number;
  end?: number;
}

export interface ReadResult {
  stream: Readable;
  /** Size of the whole file. */
  size: number;
  /** Inclusive byte range delivered. */
  start: number;
  end: number;
  /** Bytes the stream delivers (0 for an empty file). */
  length: number;
  entry: FileEntry;
}

export interface ArchiveResult {
  stream: Readable;
  /** Suggested file name (the directory's name + .tar). */
  fileName: string;
}

/** What the browser needs from the mount manager. */
export interface MountAccess {
  rootOf(mountId: string): string;
  trackStream(mountId: string, stream: Readable): void;
}

export interface FileBrowserOptions {
  defaultLimit?: number;
  maxLimit?: number;
  /** Read chunk size: large chunks keep FUSE/loop round trips few. */
  highWaterMark?: number;
}

/** Permission bits of a stat mode as four (or more) octal digits. */
export function octalMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

export function entryType(st: Stats): EntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  return 'other';
}

interface CachedNames {
  names: Buffer[];
  at: number;
}

export class FileBrowser {
  private readonly defaultLimit: number;
  private readonly maxLimit: number;
  private readonly highWaterMark: number;
  /**
   * Sorted names of recently listed directories: mounts are read-only, so a
   * listing never goes stale, and paging through a huge directory then costs
   * one readdir instead of one per page.
   */
  private readonly nameCache = new Map<string, CachedNames>();
  private static readonly CACHE_ENTRIES = 16;
  private static readonly CACHE_TTL_MS = 5 * 60 * 1000;

  constructor(
    private readonly mounts: MountAccess,
    options: FileBrowserOptions = {},
  ) {
    this.defaultLimit = options.defaultLimit ?? 500;
    this.maxLimit = options.maxLimit ?? 10000;
    this.highWaterMark = options.highWaterMark ?? 1024 * 1024;
  }

  private async sortedNames(key: string, dir: string): Promise<Buffer[]> {
    const hit = this.nameCache.get(key);
    if (hit && Date.now() - hit.at < FileBrowser.CACHE_TTL_MS) return hit.names;
    // Raw bytes: guest names need not be UTF-8 (latin1 from old systems), and
    // a decoded-and-mangled name could not be stat'ed.
    const names = await readdir(dir, { encoding: 'buffer' });
    names.sort(Buffer.compare);
    this.nameCache.set(key, { names, at: Date.now() });
    if (this.nameCache.size > FileBrowser.CACHE_ENTRIES) {
      const oldest = this.nameCache.keys().next().value;
      if (oldest !== undefined) this.nameCache.delete(oldest);
    }
    return names;
  }

  private async describe(hostPath: string | Buffer, relative: string, name: string): Promise<FileEntry> {
    const st = await lstat(hostPath);
    const entry: FileEntry = {
      name,
      path: relative,
      type: entryType(st),
      size: st.size,
      mode: octalMode(st.mode),
      mtime: st.mtime.toISOString(),
    };
    if (st.isSymbolicLink()) entry.symlinkTarget = await readlink(hostPath);
    return entry;
  }

  /** One page of a directory, sorted by name. */
  async list(mountId: string, path: string, { offset = 0, limit }: { offset?: number; limit?: number } = {}): Promise<ListPage> {
    const root = this.mounts.rootOf(mountId);
    const resolved = await resolveInside(root, path);
    const st = await lstat(resolved.real);
    if (!st.isDirectory()) throw new NotADirectory(`/${resolved.relative}`);
    const off = Math.max(0, Math.floor(Number.isFinite(offset) ? offset : 0));
    const lim = Math.min(this.maxLimit, Math.max(1, Math.floor(limit ?? this.defaultLimit)));
    const names = await this.sortedNames(`${mountId}\0${resolved.real}`, resolved.real);
    const page = names.slice(off, off + lim);
    const entries: FileEntry[] = [];
    const dirPrefix = Buffer.from(resolved.real.endsWith('/') ? resolved.real : `${resolved.real}/`);
    for (const raw of page) {
      const name = raw.toString('utf8');
      const rel = resolved.relative ? `${resolved.relative}/${name}` : name;
      try {
        const entry = await this.describe(Buffer.concat([dirPrefix, raw]), rel, name);
        // Shown with U+FFFD; it cannot be addressed by path, but directory
        // archives include it with its real bytes.
        if (!Buffer.from(name, 'utf8').equals(raw)) entry.nameNotUtf8 = true;
        entries.push(entry);
      } catch {
        // An entry the filesystem cannot stat (damaged guest fs) is shown as 'other'.
        entries.push({ name, path: rel, type: 'other', size: 0, mode: '0000', mtime: new Date(0).toISOString() });
      }
    }
    return { path: resolved.relative, entries, offset: off, limit: lim, total: names.length };
  }

  /** Metadata of one entry; a symlink is described itself, not its target. */
  async stat(mountId: string, path: string): Promise<FileEntry> {
    const root = this.mounts.rootOf(mountId);
    const resolved = await resolveInside(root, path, { followFinal: false });
    return this.describe(resolved.real, resolved.relative, posix.basename(`/${resolved.relative}`) || '/');
  }

  /**
   * A read stream of a regular file, optionally a byte range (inclusive end,
   * as in HTTP Range). A symlink is followed only when it stays inside.
   */
  async openRead(mountId: string, path: string, rangeOrFn: ByteRange | ((size: number) => ByteRange) = {}): Promise<ReadResult> {
    const root = this.mounts.rootOf(mountId);
    const resolved = await resolveInside(root, path);
    // Refuse FIFOs and devices before open(): opening a guest FIFO would block
    // a libuv thread forever. O_NONBLOCK covers a swap between stat and open.
    if (!(await lstat(resolved.real)).isFile()) throw new NotAFile(`/${resolved.relative}`);
    const handle = await open(resolved.real, constants.O_RDONLY | constants.O_NONBLOCK);
    let handed = false;
    try {
      const st = await handle.stat();
      if (!st.isFile()) throw new NotAFile(`/${resolved.relative}`);
      const size = st.size;
      // A function lets an HTTP layer derive the range from the size (suffix ranges).
      const range = typeof rangeOrFn === 'function' ? rangeOrFn(size) : rangeOrFn;
      const start = range.start ?? 0;
      let end = range.end ?? size - 1;
      if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0) {
        throw new RangeNotSatisfiable(size, 'range bounds must be non-negative integers');
      }
      if (size === 0 && range.start === undefined && range.end === undefined) {
        end = -1;
      } else {
        if (start >= size) throw new RangeNotSatisfiable(size, `start ${start} is beyond the size ${size}`);
        if (end < start) throw new RangeNotSatisfiable(size, `end ${end} is before start ${start}`);
        end = Math.min(end, size - 1);
      }
      const length = end - start + 1;
      const entry: FileEntry = {
        name: posix.basename(`/${resolved.relative}`),
        path: resolved.relative,
        type: 'file',
        size,
        mode: octalMode(st.mode),
        mtime: st.mtime.toISOString(),
      };
      let stream: Readable;
      if (length === 0) {
        // createReadStream cannot express an empty range (end is inclusive).
        await handle.close();
        stream = Readable.from([]);
      } else {
        stream = handle.createReadStream({ start, end, highWaterMark: this.highWaterMark, autoClose: true });
      }
      handed = true;
      this.mounts.trackStream(mountId, stream);
      return { stream, size, start, end, length, entry };
    } finally {
      if (!handed) await handle.close().catch(() => undefined);
    }
  }

  /** A directory (recursively) as a tar stream, produced while it is read. */
  async archive(mountId: string, path: string): Promise<ArchiveResult> {
    const root = this.mounts.rootOf(mountId);
    const resolved = await resolveInside(root, path);
    const st = await lstat(resolved.real);
    if (!st.isDirectory()) throw new NotADirectory(`/${resolved.relative}`);
    const base = posix.basename(`/${resolved.relative}`) || mountId;
    const stream = createTarStream(resolved.real, base, { highWaterMark: this.highWaterMark });
    this.mounts.trackStream(mountId, stream);
    return { stream, fileName: `${base}.tar` };
  }
}
