import { createReadStream, type Stats } from 'node:fs';
import { lstat, open, readFile, readdir, readlink } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pack as createPack, type Header, type Pack } from 'tar-stream';

/**
 * A directory tree as a tar stream, generated while the consumer reads it:
 * file contents are piped entry by entry (the pack stream applies
 * backpressure), so memory stays flat for any tree size.
 *
 * The walk uses lstat and never follows symlinks: a link is stored as a link
 * (its target text), so an archive cannot pull in files outside the mount.
 * Devices, FIFOs and sockets are skipped. A file with several hard links
 * inside the tree is stored once; its other names are hard-link entries
 * pointing at the first (so it unpacks as links, not as copies).
 *
 * A sparse file (fewer blocks allocated than its size) is stored in the PAX
 * GNU.sparse 1.0 format that GNU tar writes and extracts (`--sparse
 * --sparse-version=1.0 --format=pax`): the extended header names it and gives
 * its real size, and the entry's data is the map (entry count, then offset and
 * length of each data extent, in decimal lines, padded to 512 bytes) followed
 * by the extents' bytes only. Node has no SEEK_DATA/SEEK_HOLE, so extents are
 * found by reading the file once in 64 KiB blocks and skipping all-zero ones
 * (reading a hole costs no disk I/O); only the data is then streamed.
 */

/** The typings demand every header field; tar-stream fills the rest with defaults. */
function header(h: Partial<Header> & { name: string }): Header {
  return h as Header;
}

/** Below this size a file is read in one call: a stream per small file costs more than its data. */
const SMALL_FILE = 256 * 1024;

async function addFile(pack: Pack, header: Header, hostPath: Buffer, highWaterMark: number): Promise<void> {
  if ((header.size ?? 0) <= SMALL_FILE) {
    const data = header.size ? await readFile(hostPath) : Buffer.alloc(0);
    // The filesystem is read-only, but trust the bytes read over the stat.
    header.size = data.length;
    await new Promise<void>((resolve, reject) => pack.entry(header, data, (err) => (err ? reject(err) : resolve())));
    return;
  }
  await new Promise<void>((resolve, reject) => {
    const entry = pack.entry(header, (err) => (err ? reject(err) : resolve()));
    pipeline(createReadStream(hostPath, { highWaterMark }), entry).catch(reject);
  });
}

/** Granularity of the zero-block scan of sparse files. */
export const SPARSE_BLOCK = 64 * 1024;

export interface Extent {
  offset: number;
  length: number;
}

/** Data extents of a file: runs of 64 KiB blocks that are not all zero. */
export async function dataExtents(hostPath: Buffer | string, size: number): Promise<Extent[]> {
  const extents: Extent[] = [];
  const fh = await open(hostPath, 'r');
  const buf = Buffer.alloc(4 * 1024 * 1024);
  try {
    for (let pos = 0; pos < size; ) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - pos), pos);
      if (!bytesRead) break;
      for (let i = 0; i < bytesRead; i += SPARSE_BLOCK) {
        const end = Math.min(i + SPARSE_BLOCK, bytesRead);
        if (isZero(buf, i, end)) continue;
        const last = extents[extents.length - 1];
        if (last && last.offset + last.length === pos + i) last.length += end - i;
        else extents.push({ offset: pos + i, length: end - i });
      }
      pos += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return extents;
}

const ZERO = Buffer.alloc(SPARSE_BLOCK);
function isZero(buf: Buffer, start: number, end: number): boolean {
  return buf.compare(ZERO, 0, end - start, start, end) === 0;
}

/** The GNU.sparse 1.0 map block: decimal lines, NUL-padded to 512 bytes. A file that ends in a hole ends with (size, 0), as GNU tar writes it. */
export function sparseMap(extents: Extent[], size: number): Buffer {
  const all = [...extents];
  const last = all[all.length - 1];
  if (!last || last.offset + last.length < size) all.push({ offset: size, length: 0 });
  const text = `${all.length}\n${all.map((e) => `${e.offset}\n${e.length}\n`).join('')}`;
  const out = Buffer.alloc(Math.ceil(Buffer.byteLength(text) / 512) * 512);
  out.write(text, 'utf8');
  return out;
}

/** Worth storing sparse: it has holes the file system knows of, and enough size for them to matter. */
function looksSparse(st: Stats): boolean {
  return st.size > SMALL_FILE && st.blocks * 512 < st.size - SPARSE_BLOCK;
}

async function addSparseFile(pack: Pack, h: Header, hostPath: Buffer, size: number): Promise<boolean> {
  const extents = await dataExtents(hostPath, size);
  const data = extents.reduce((n, e) => n + e.length, 0);
  // Not worth it when the holes were all data after all (e.g. preallocated).
  if (data >= size - SPARSE_BLOCK) return false;
  const map = sparseMap(extents, size);
  const entry = header({
    ...h,
    size: map.length + data,
    pax: { 'GNU.sparse.major': '1', 'GNU.sparse.minor': '0', 'GNU.sparse.name': h.name, 'GNU.sparse.realsize': String(size) },
  });
  async function* body(): AsyncGenerator<Buffer> {
    yield map;
    for (const e of extents) {
      for await (const chunk of createReadStream(hostPath, { start: e.offset, end: e.offset + e.length - 1, highWaterMark: 1024 * 1024 }))
        yield chunk as Buffer;
    }
  }
  await new Promise<void>((resolve, reject) => {
    const out = pack.entry(entry, (err) => (err ? reject(err) : resolve()));
    pipeline(Readable.from(body()), out).catch(reject);
  });
  return true;
}

/** First archive name of each multiply-linked file (by device and inode). */
type Links = Map<string, string>;

async function addTree(pack: Pack, hostDir: Buffer, name: string, highWaterMark: number, isDestroyed: () => boolean, links: Links): Promise<void> {
  // Raw byte names: a name that is not UTF-8 must still be read by its real
  // bytes (it is stored in the archive with replacement characters).
  const names = await readdir(hostDir, { encoding: 'buffer' });
  names.sort(Buffer.compare);
  for (const child of names) {
    if (isDestroyed()) return;
    const hostPath = Buffer.concat([hostDir, SLASH, child]);
    const entryName = `${name}/${child.toString('utf8')}`;
    const st = await lstat(hostPath);
    const common = { name: entryName, mode: st.mode & 0o7777, mtime: st.mtime, uid: st.uid, gid: st.gid };
    if (st.isDirectory()) {
      await new Promise<void>((res, rej) => pack.entry(header({ ...common, type: 'directory' }), (e) => (e ? rej(e) : res())));
      await addTree(pack, hostPath, entryName, highWaterMark, isDestroyed, links);
    } else if (st.isFile()) {
      if (st.nlink > 1) {
        const key = `${st.dev}:${st.ino}`;
        const first = links.get(key);
        if (first !== undefined) {
          await new Promise<void>((res, rej) => pack.entry(header({ ...common, type: 'link', linkname: first, size: 0 }), (e) => (e ? rej(e) : res())));
          continue;
        }
        links.set(key, entryName);
      }
      const h = header({ ...common, type: 'file', size: st.size });
      if (looksSparse(st) && (await addSparseFile(pack, h, hostPath, st.size))) continue;
      await addFile(pack, h, hostPath, highWaterMark);
    } else if (st.isSymbolicLink()) {
      const linkname = await readlink(hostPath);
      await new Promise<void>((res, rej) => pack.entry(header({ ...common, type: 'symlink', linkname }), (e) => (e ? rej(e) : res())));
    }
  }
}

const SLASH = Buffer.from('/');

export function createTarStream(hostDir: string, rootName: string, { highWaterMark = 1024 * 1024 } = {}): Readable {
  const pack = createPack();
  let destroyed = false;
  // tar-stream is a streamx stream; expose a plain Node Readable to callers
  // (NestJS StreamableFile, pipeline) with destroy propagating back.
  const out = Readable.from(pack as unknown as AsyncIterable<Buffer>, { objectMode: false });
  out.once('close', () => {
    destroyed = true;
    pack.destroy();
  });
  void (async () => {
    try {
      const st = await lstat(hostDir);
      await new Promise<void>((res, rej) =>
        pack.entry(header({ name: rootName, type: 'directory', mode: st.mode & 0o7777, mtime: st.mtime, uid: st.uid, gid: st.gid }), (e) =>
          e ? rej(e) : res(),
        ),
      );
      await addTree(pack, Buffer.from(hostDir.replace(/\/+$/, '')), rootName, highWaterMark, () => destroyed, new Map());
      pack.finalize();
    } catch (err) {
      pack.destroy(err as Error);
    }
  })();
  return out;
}
