import { lstat, mkdir, open, rename, rm, utimes } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { CliError, EXIT } from './errors';

/**
 * GNU sparse files (PAX GNU.sparse 1.0, what the gateway's archive and
 * `tar --sparse --sparse-version=1.0 --format=pax` write) for node-tar, which
 * does not know them: it drops the GNU.sparse.* keys and writes the entry's
 * data as it is, the map followed by the data extents.
 *
 * `SparseWatcher` passes the archive through unchanged while following its
 * 512-byte framing, and notes each entry whose extended header says
 * GNU.sparse.major=1. After node-tar has unpacked, `expandSparse` turns each
 * such file back into the real thing: a file of GNU.sparse.realsize bytes
 * with the extents written at their offsets and holes in between (never
 * materialising the zeros).
 */

export interface SparseEntry {
  /** The name node-tar wrote the packed data under. */
  stored: string;
  /** The file's real name (GNU.sparse.name). */
  name: string;
  realSize: number;
  /** Size of the packed data (map + extents). */
  packedSize: number;
}

const BLOCK = 512;

function field(b: Buffer, start: number, len: number): string {
  const raw = b.subarray(start, start + len);
  const nul = raw.indexOf(0);
  return (nul < 0 ? raw : raw.subarray(0, nul)).toString('utf8');
}

function sizeOf(h: Buffer): number {
  if ((h[124] ?? 0) & 0x80) {
    // base-256 (GNU) for sizes over 8 GiB
    let n = 0;
    for (let i = 125; i < 136; i++) n = n * 256 + (h[i] ?? 0);
    return n;
  }
  const s = field(h, 124, 12).trim();
  return s ? parseInt(s, 8) : 0;
}

/** PAX records: "<len> key=value\n". */
export function parsePax(b: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < b.length) {
    const sp = b.indexOf(0x20, i);
    if (sp < 0) break;
    const len = parseInt(b.subarray(i, sp).toString('ascii'), 10);
    if (!len || i + len > b.length) break;
    const rec = b.subarray(sp + 1, i + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    i += len;
  }
  return out;
}

export class SparseWatcher extends Transform {
  readonly entries: SparseEntry[] = [];
  private header = Buffer.alloc(0);
  private skip = 0;
  private collect: Buffer[] | null = null;
  private collectLeft = 0;
  private pax: Record<string, string> | null = null;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.scan(chunk);
    } catch (err) {
      cb(err as Error);
      return;
    }
    cb(null, chunk);
  }

  private scan(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        if (this.collect && this.collectLeft > 0) {
          const take = Math.min(n, this.collectLeft);
          this.collect.push(chunk.subarray(i, i + take));
          this.collectLeft -= take;
          if (this.collectLeft === 0) {
            this.pax = { ...(this.pax ?? {}), ...parsePax(Buffer.concat(this.collect)) };
            this.collect = null;
          }
        }
        this.skip -= n;
        i += n;
        continue;
      }
      const need = BLOCK - this.header.length;
      const part = chunk.subarray(i, i + need);
      this.header = this.header.length ? Buffer.concat([this.header, part]) : Buffer.from(part);
      i += part.length;
      if (this.header.length < BLOCK) return;
      const h = this.header;
      this.header = Buffer.alloc(0);
      this.onHeader(h);
    }
  }

  private onHeader(h: Buffer): void {
    if (h.every((b) => b === 0)) return; // end-of-archive blocks
    const size = sizeOf(h);
    const type = String.fromCharCode(h[156] ?? 0);
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    this.skip = padded;
    if (type === 'x') {
      this.collect = [];
      this.collectLeft = size;
      if (size === 0) this.collect = null;
      return;
    }
    if (type === 'g' || type === 'L' || type === 'K') return;
    const pax = this.pax;
    this.pax = null;
    if (pax?.['GNU.sparse.major'] !== '1' || (type !== '0' && type !== '\0')) return;
    const prefix = field(h, 257, 6).startsWith('ustar') ? field(h, 345, 155) : '';
    const ustarName = prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100);
    const stored = pax['path'] ?? ustarName;
    const realSize = Number(pax['GNU.sparse.realsize']);
    if (!Number.isSafeInteger(realSize) || realSize < 0)
      throw new CliError(
        `the archive has a sparse entry ${stored} without a valid real size`,
        EXIT.internal,
        'report this: the gateway wrote a broken archive',
      );
    this.entries.push({ stored, name: pax['GNU.sparse.name'] ?? stored, realSize, packedSize: size });
  }
}

/** Where node-tar (cwd, strip 1) put an archive name; null when it would be outside (node-tar refuses those too). */
function local(cwd: string, name: string): string | null {
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length < 2 || parts.includes('..')) return null;
  const p = resolve(cwd, ...parts.slice(1));
  const rel = relative(cwd, p);
  return rel && !rel.startsWith(`..${sep}`) && rel !== '..' ? p : null;
}

interface MapOf {
  extents: Array<{ offset: number; length: number }>;
  dataStart: number;
}

async function readMap(fh: import('node:fs/promises').FileHandle, packed: number, path: string): Promise<MapOf> {
  const bad = (why: string) => new CliError(`sparse file ${path}: ${why}`, EXIT.internal, 'extract it again; if it repeats, report it (the archive is broken)');
  let text = '';
  for (let pos = 0; pos < packed; pos += BLOCK) {
    const b = Buffer.alloc(BLOCK);
    const { bytesRead } = await fh.read(b, 0, BLOCK, pos);
    if (bytesRead < BLOCK) throw bad('the map is cut short');
    text += b.toString('latin1');
    const nums = text.split('\n');
    const count = Number(nums[0]);
    if (nums.length > 1 && !Number.isSafeInteger(count)) throw bad('the map has no entry count');
    // count, then 2 numbers per extent, each ended by a newline
    if (nums.length - 1 >= 1 + 2 * count) {
      const extents = [];
      for (let k = 0; k < count; k++) {
        const offset = Number(nums[1 + 2 * k]);
        const length = Number(nums[2 + 2 * k]);
        if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) throw bad(`map entry ${k} is not a number`);
        extents.push({ offset, length });
      }
      return { extents, dataStart: pos + BLOCK };
    }
  }
  throw bad('the map is longer than the entry');
}

/** Rewrite each packed sparse file node-tar unpacked under `cwd` into a sparse file of its real size. */
export async function expandSparse(cwd: string, entries: SparseEntry[]): Promise<number> {
  let done = 0;
  for (const e of entries) {
    const packedPath = local(cwd, e.stored);
    const finalPath = local(cwd, e.name);
    if (!packedPath || !finalPath) continue; // node-tar refused it as well
    const st = await lstat(packedPath).catch(() => null);
    if (!st?.isFile() || st.size !== e.packedSize) {
      throw new CliError(`sparse file ${e.name} did not unpack as a ${e.packedSize}-byte file`, EXIT.internal, 'extract it again; if it repeats, report it');
    }
    const tmp = join(dirname(finalPath), `.${process.pid}.sendense-sparse`);
    const src = await open(packedPath, 'r');
    try {
      const { extents, dataStart } = await readMap(src, e.packedSize, e.name);
      const total = extents.reduce((n, x) => n + x.length, 0);
      if (dataStart + total !== e.packedSize)
        throw new CliError(
          `sparse file ${e.name}: its map covers ${total} bytes, the entry holds ${e.packedSize - dataStart}`,
          EXIT.internal,
          'extract it again; if it repeats, report it',
        );
      await mkdir(dirname(finalPath), { recursive: true });
      const dst = await open(tmp, 'wx', st.mode & 0o7777);
      try {
        await dst.truncate(e.realSize);
        const buf = Buffer.alloc(1024 * 1024);
        let from = dataStart;
        for (const x of extents) {
          if (x.offset + x.length > e.realSize)
            throw new CliError(`sparse file ${e.name}: an extent ends past its size`, EXIT.internal, 'report this: the archive is broken');
          for (let done2 = 0; done2 < x.length; ) {
            const { bytesRead } = await src.read(buf, 0, Math.min(buf.length, x.length - done2), from);
            if (!bytesRead) throw new CliError(`sparse file ${e.name} is cut short`, EXIT.internal, 'extract it again');
            await dst.write(buf, 0, bytesRead, x.offset + done2);
            done2 += bytesRead;
            from += bytesRead;
          }
        }
        await dst.chmod(st.mode & 0o7777);
      } finally {
        await dst.close();
      }
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    } finally {
      await src.close();
    }
    await utimes(tmp, st.atime, st.mtime);
    await rename(tmp, finalPath);
    if (finalPath !== packedPath) await rm(packedPath, { force: true });
    done++;
  }
  return done;
}
