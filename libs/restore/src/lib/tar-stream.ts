import { createReadStream } from 'node:fs';
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
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
      await addFile(pack, header({ ...common, type: 'file', size: st.size }), hostPath, highWaterMark);
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
