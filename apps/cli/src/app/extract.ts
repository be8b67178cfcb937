import { createWriteStream } from 'node:fs';
import { chmod, lstat, lutimes, mkdir, open, readdir, rename, rm, rmdir, stat, symlink, utimes } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SingleBar, Presets } from 'cli-progress';
import { ApiError, unwrap, type Schemas } from '@sendense/api-client';
import * as tar from 'tar';
import type { Ctx } from './context';
import { CliError, EXIT } from './errors';
import { humanBytes, parseMode } from './format';
import { expandSparse, SparseWatcher } from './sparse';

export type Mount = Schemas['MountInfoDto'];
export type Entry = Schemas['FileEntryDto'];
export type Listing = Schemas['FileListingDto'];

/** "/etc/hosts" or "etc/hosts" -> "etc/hosts"; refuses NUL and "..". */
export function guestPath(p: string): string {
  if (p.includes('\0')) throw new CliError('a guest path cannot hold a NUL byte', EXIT.usage, 'give the path as the guest shows it, e.g. /etc/hostname');
  const parts = p.split('/').filter((s) => s !== '' && s !== '.');
  if (parts.includes('..')) throw new CliError(`guest path "${p}" may not contain ".."`, EXIT.usage, 'give the path as the guest sees it, e.g. /etc/hostname');
  return parts.join('/');
}

export async function listMounts(ctx: Ctx): Promise<Mount[]> {
  return unwrap(ctx.api.GET('/api/v1/restore/mounts'));
}

export async function mountBackup(ctx: Ctx, backupId: string): Promise<Mount> {
  return unwrap(ctx.api.POST('/api/v1/restore/mount', { body: { backup_id: backupId } }));
}

export async function listDir(ctx: Ctx, mountId: string, path: string, offset = 0, limit = 1000): Promise<Listing> {
  const res = await ctx.raw.request('GET', `/api/v1/restore/${encodeURIComponent(mountId)}/files`, { query: { path, offset, limit } });
  return (await res.json()) as Listing;
}

/** Every entry of a directory (all pages). */
export async function listAll(ctx: Ctx, mountId: string, path: string): Promise<Entry[]> {
  const out: Entry[] = [];
  for (let offset = 0; ; ) {
    const page = await listDir(ctx, mountId, path, offset, 1000);
    out.push(...page.entries);
    offset += page.entries.length;
    if (!page.entries.length || offset >= page.total) return out;
  }
}

/** The entry at a mount-relative path, or null when it does not exist. */
export async function findEntry(ctx: Ctx, mountId: string, rel: string): Promise<Entry | null> {
  const parent = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '';
  const name = rel.slice(rel.lastIndexOf('/') + 1);
  try {
    for (const e of await listAll(ctx, mountId, parent)) if (e.name === name) return e;
    return null;
  } catch (err) {
    if (err instanceof ApiError && (err.status === 404 || err.status === 400)) return null;
    throw err;
  }
}

/** The mounted partition holding a guest path; --partition picks one by name. */
export async function locate(ctx: Ctx, mount: Mount, path: string, partition?: string): Promise<{ partition: string; entry: Entry }> {
  const mounted = mount.partitions.filter((p) => p.mounted !== false);
  if (partition) {
    const p = mount.partitions.find((x) => x.name === partition);
    if (!p)
      throw new CliError(
        `mount ${mount.mount_id} has no partition ${partition} (it has ${mount.partitions.map((x) => x.name).join(', ') || 'none'})`,
        EXIT.notFound,
        'pick one of those with --partition, or leave --partition out to search them all',
      );
    if (p.mounted === false)
      throw new CliError(`partition ${partition} is not mounted: ${p.error ?? 'no file system found'}`, EXIT.notFound, 'pick another with --partition');
    const entry = path ? await findEntry(ctx, mount.mount_id, `${partition}/${path}`) : await rootEntry(partition);
    if (!entry)
      throw new CliError(
        `/${path} is not on partition ${partition} of backup ${mount.backup_id ?? mount.mount_id}`,
        EXIT.notFound,
        `look with: sendense-ctl backup ls --mount ${mount.mount_id} ${partition}`,
      );
    return { partition, entry };
  }
  if (!mounted.length)
    throw new CliError(
      `backup ${mount.backup_id ?? ''} has no mountable file system`,
      EXIT.notFound,
      'see its partitions with: sendense-ctl backup mount --backup-id ID',
    );
  const found: Array<{ partition: string; entry: Entry }> = [];
  for (const p of mounted) {
    const entry = path ? await findEntry(ctx, mount.mount_id, `${p.name}/${path}`) : await rootEntry(p.name);
    if (entry) found.push({ partition: p.name, entry });
  }
  const [first, ...others] = found;
  if (!first) {
    throw new CliError(
      `/${path} is on none of the partitions of backup ${mount.backup_id ?? mount.mount_id} (${mounted.map((p) => p.name).join(', ')})`,
      EXIT.notFound,
      `look with: sendense-ctl backup ls --mount ${mount.mount_id} ${mounted[0]?.name ?? ''}`,
    );
  }
  if (others.length) {
    throw new CliError(
      `/${path} exists on several partitions (${found.map((f) => f.partition).join(', ')})`,
      EXIT.usage,
      `pick one with --partition ${first.partition}`,
    );
  }
  return first;
}

async function rootEntry(partition: string): Promise<Entry> {
  return { name: partition, path: partition, type: 'dir', size: 0, mode: '0755', mtime: new Date(0).toISOString() };
}

async function exists(p: string): Promise<boolean> {
  return lstat(p).then(
    () => true,
    () => false,
  );
}

/** Counts bytes through a stream (for the bar). */
export function counter(onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
}

export function byteProgress(ctx: Ctx, label: string, total: number | null): { add(n: number): void; stop(): void } {
  if (ctx.quiet || ctx.json) return { add: () => undefined, stop: () => undefined };
  if (ctx.io.stderr.isTTY) {
    const bar = new SingleBar(
      {
        stream: ctx.io.stderr as NodeJS.WriteStream,
        format: ` ${label} [{bar}] {percentage}% | {doneH}/{totalH} | {rateH}/s | ETA {eta_formatted}`,
        hideCursor: true,
        barsize: 24,
      },
      Presets.shades_classic,
    );
    const started = Date.now();
    let done = 0;
    bar.start(total ?? 1, 0, { doneH: '0 B', totalH: total === null ? '?' : humanBytes(total), rateH: '0 B' });
    return {
      add(n) {
        done += n;
        const rate = (done * 1000) / Math.max(1, Date.now() - started);
        bar.update(total === null ? 0 : done, { doneH: humanBytes(done), rateH: humanBytes(Math.round(rate)) });
      },
      stop: () => bar.stop(),
    };
  }
  let done = 0;
  let last = Date.now();
  const every = 5000;
  return {
    add(n) {
      done += n;
      if (Date.now() - last >= every) {
        last = Date.now();
        ctx.note(`${label}: ${humanBytes(done)}${total !== null ? ` of ${humanBytes(total)}` : ''}`);
      }
    },
    stop: () => undefined,
  };
}

export interface FileResult {
  output: string;
  bytes: number;
  resumed_from: number;
}

/**
 * Download one file to `dest` through `dest.sendense-part`, renamed when
 * complete; with resume, a partial file continues with a Range request.
 */
export async function downloadFile(ctx: Ctx, mountId: string, rel: string, entry: Entry, dest: string, resume: boolean): Promise<FileResult> {
  const part = `${dest}.sendense-part`;
  let have = 0;
  if (resume) {
    const st = await stat(part).catch(() => null);
    if (st?.isFile()) have = st.size;
  }
  const url = `/api/v1/restore/${encodeURIComponent(mountId)}/download`;
  const headers: Record<string, string> = have > 0 ? { range: `bytes=${have}-` } : {};
  let res = await ctx.raw.request('GET', url, { query: { path: rel }, headers, allow: [416] });
  if (res.status === 416) {
    await res.body?.cancel();
    if (have === entry.size) {
      // Already complete: only the rename was missing.
      await finish(part, dest, entry);
      return { output: dest, bytes: 0, resumed_from: have };
    }
    have = 0;
    res = await ctx.raw.request('GET', url, { query: { path: rel } });
  }
  const append = res.status === 206 && have > 0;
  if (!append) have = 0;
  const length = Number(res.headers.get('content-length') ?? NaN);
  const total = Number.isFinite(length) ? length + have : entry.size;
  if (!res.body) throw new CliError(`the gateway sent no body for /${rel}`, EXIT.internal, 'try again; if it repeats, see the gateway log');
  await mkdir(dirname(dest), { recursive: true });
  const bar = byteProgress(ctx, basename(dest), total);
  if (have) bar.add(have);
  let got = 0;
  try {
    await pipeline(
      Readable.fromWeb(res.body),
      counter((n) => {
        got += n;
        bar.add(n);
      }),
      createWriteStream(part, { flags: append ? 'a' : 'w', mode: 0o600 }),
    );
  } finally {
    bar.stop();
  }
  const size = (await stat(part)).size;
  if (Number.isFinite(length) && got !== length) {
    throw new CliError(
      `download of /${rel} stopped after ${humanBytes(got)} of ${humanBytes(length)}`,
      EXIT.unreachable,
      `run the same command with --resume to continue`,
    );
  }
  if (size !== total) throw new CliError(`download of /${rel} has ${size} bytes, expected ${total}`, EXIT.internal, 'extract again without --resume');
  await finish(part, dest, entry);
  return { output: dest, bytes: got, resumed_from: have };
}

async function finish(part: string, dest: string, entry: Entry): Promise<void> {
  const fh = await open(part, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  await chmod(part, parseMode(entry.mode, 0o644));
  const mtime = new Date(entry.mtime);
  if (!Number.isNaN(mtime.getTime())) await utimes(part, mtime, mtime);
  await rename(part, dest);
}

export interface DirResult {
  output: string;
  entries: number;
  bytes: number;
  /** Files that came as GNU sparse entries and were written back with their holes. */
  sparse_files: number;
}

/**
 * Download a directory as the gateway's tar stream and unpack it into a
 * temporary directory next to `dest`, renamed when complete. node-tar keeps
 * modes and symlinks (as symlinks), refuses entries with ".." or absolute
 * names and never writes through a symlink, so nothing lands outside.
 * node-tar does not know GNU sparse entries: `SparseWatcher` notes them on
 * the way through and `expandSparse` writes them back with their holes.
 */
export async function downloadDir(ctx: Ctx, mountId: string, rel: string, dest: string): Promise<DirResult> {
  if (await exists(dest)) {
    const st = await lstat(dest);
    if (!st.isDirectory() || (await readdir(dest)).length) {
      throw new CliError(`${dest} already exists`, EXIT.usage, 'give a new directory (or an empty one) as --output');
    }
  }
  const tmp = resolve(dirname(dest), `.${basename(dest)}.sendense-part-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true, mode: 0o700 });
  const res = await ctx.raw.request('GET', `/api/v1/restore/${encodeURIComponent(mountId)}/archive`, { query: { path: rel } });
  if (!res.body) throw new CliError(`the gateway sent no archive for /${rel}`, EXIT.internal, 'try again; if it repeats, see the gateway log');
  const bar = byteProgress(ctx, basename(dest), null);
  let r: Unpacked;
  try {
    r = await unpackTar(Readable.fromWeb(res.body), tmp, (n) => bar.add(n));
  } catch (err) {
    bar.stop();
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  bar.stop();
  const { warnings, entries, bytes, sparse_files } = r;
  for (const w of warnings.slice(0, 10)) ctx.note(`warning: ${w}`);
  if (await exists(dest)) await rmdir(dest);
  await rename(tmp, dest);
  return { output: dest, entries, bytes, sparse_files };
}

export interface Unpacked {
  entries: number;
  bytes: number;
  sparse_files: number;
  warnings: string[];
}

/**
 * Unpack a tar stream into `cwd`, dropping its first name component (the
 * archived directory itself); GNU sparse entries come out sparse.
 *
 * Symbolic links come out as symbolic links with the guest's target kept
 * verbatim (`/etc/passwd`, `../../lib`): node-tar would rewrite an absolute
 * target into a relative one and drop a target that leaves the output
 * directory, which turns a restored tree into a different one. Links are
 * made after every file is written, and only where each directory on the
 * way is a real directory inside `cwd`, so no entry is ever written through
 * a link, whatever the link points at.
 */
export async function unpackTar(source: Readable, cwd: string, onBytes: (n: number) => void = () => undefined): Promise<Unpacked> {
  let entries = 0;
  let bytes = 0;
  const warnings: string[] = [];
  const links: { path: string; target: string; mtime?: Date }[] = [];
  const sparse = new SparseWatcher();
  await pipeline(
    source,
    counter(onBytes),
    sparse,
    tar.x({
      cwd,
      strip: 1,
      preservePaths: false,
      strict: false,
      filter: (path, entry) => {
        if (!('type' in entry) || entry.type !== 'SymbolicLink') return true;
        entries++;
        links.push({ path, target: String(entry.linkpath ?? ''), mtime: entry.mtime });
        return false;
      },
      onReadEntry: (e) => {
        entries++;
        bytes += e.size ?? 0;
      },
      onwarn: (_code, message) => {
        warnings.push(String(message));
      },
    }),
  );
  const sparse_files = await expandSparse(cwd, sparse.entries);
  for (const l of links) {
    const w = await placeSymlink(cwd, l.path, l.target, l.mtime);
    if (w) warnings.push(w);
  }
  return { entries, bytes, sparse_files, warnings };
}

/**
 * Make one archived symbolic link under `root`. `archived` is the entry's
 * name in the archive (its first component, the archived directory, is
 * dropped as tar's strip does). Returns a warning when it was not made.
 */
async function placeSymlink(root: string, archived: string, target: string, mtime?: Date): Promise<string | null> {
  const parts = archived
    .replace(/\\/g, '/')
    .split('/')
    .filter((p) => p && p !== '.');
  if (parts.includes('..') || archived.startsWith('/')) return `skipped symbolic link ${archived}: its name leaves the output directory`;
  const rel = parts.slice(1);
  if (!rel.length) return null; // the archived directory itself as a link: nothing to make inside it
  if (!target || target.includes('\0')) return `skipped symbolic link ${archived}: it has no target`;
  let dir = root;
  for (const part of rel.slice(0, -1)) {
    dir = join(dir, part);
    const st = await lstat(dir).catch(() => null);
    if (!st) await mkdir(dir, { mode: 0o755 });
    else if (!st.isDirectory())
      return `skipped symbolic link ${archived}: ${dir} is not a directory here (a link or a file), and nothing is written through one`;
  }
  const at = join(dir, rel[rel.length - 1] as string);
  if (await lstat(at).catch(() => null)) return `skipped symbolic link ${archived}: ${at} exists already`;
  await symlink(target, at);
  if (mtime) await lutimes(at, mtime, mtime).catch(() => undefined);
  return null;
}

/** Where a file download lands: into a directory given as --output, else at that name. */
export async function fileDestination(output: string, guest: string): Promise<string> {
  const st = await stat(output).catch(() => null);
  if (st?.isDirectory()) return join(output, basename(guest));
  return output;
}
