import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, realpath, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { CommandError, findProcesses, run, runJson, terminate } from '@sendense/process';
import { RestoreError } from './errors';
import { releaseFuseFile, startFuseExport, type FuseExport } from './fuse-export';
import { readChain } from './image-chain';

/**
 * Whole-disk image downloads: a restore point's chain as one self-contained
 * file, in the format the client asks for.
 *
 * - raw: no conversion and no scratch space: the chain is exposed as a raw
 *   file by a read-only qemu-storage-daemon FUSE export and read at the
 *   requested range (HTTP Range works, resumable downloads too).
 * - qcow2, vmdk (streamOptimized): `qemu-img convert` of the whole chain into
 *   a scratch file without backing file, then streamed. qemu-img cannot write
 *   these formats to a pipe, so the scratch space is needed: `qemu-img
 *   measure` says how much, and the download is refused (507) before it
 *   starts when the scratch file system has less free. The scratch file is
 *   removed when the stream ends, fails, or the client goes away; a client
 *   that goes away during the conversion stops qemu-img (AbortSignal).
 *
 * qemu takes its shared read locks on the chain while reading, so a
 * consolidation (`qemu-img commit`) cannot change the images under a
 * download: it fails and is retried later.
 */

export type ImageFormat = 'raw' | 'qcow2' | 'vmdk';
export const IMAGE_FORMATS: readonly ImageFormat[] = ['raw', 'qcow2', 'vmdk'];

export class InsufficientSpace extends RestoreError {
  constructor(message: string) {
    super(message, 'INSUFFICIENT_SPACE');
  }
}

export class ImageFailed extends RestoreError {
  constructor(message: string) {
    super(message, 'IMAGE_FAILED');
  }
}

export class DownloadAborted extends RestoreError {
  constructor(message: string) {
    super(message, 'DOWNLOAD_ABORTED');
  }
}

export interface ImageDownloaderOptions {
  /** Scratch space of conversions and FUSE files, one sub-directory per download. */
  workDir: string;
  /** The chain's files must resolve under one of these (the repositories). */
  allowedImageRoots?: string[];
  /** Kept free beyond what a conversion needs (default 64 MiB). */
  reserveBytes?: number;
  log?: (message: string) => void;
}

export interface ImageRequest {
  imagePath: string;
  format: ImageFormat;
  /** The chain the caller expects, top first: refused when the image's backing chain differs. */
  expectedChain?: string[];
  /** Raw only: given the image size, the byte range to send (inclusive), or null for all of it. */
  range?: (size: number) => { start: number; end: number } | null;
  /** Aborted when the client goes away: stops the conversion. */
  signal?: AbortSignal;
}

export interface PreparedImage {
  format: ImageFormat;
  /** Suggested file name: `<restore point>.raw|.qcow2|.vmdk`. */
  fileName: string;
  contentType: string;
  /** Size of the whole image file. */
  size: number;
  start: number;
  end: number;
  /** Bytes the stream carries (end - start + 1). */
  length: number;
  partial: boolean;
  stream: Readable;
  /** Frees what the download holds (FUSE export, scratch file); called on the stream's end or close anyway. */
  release(): Promise<void>;
}

export interface SpaceEstimate {
  /** Bytes the converted file takes at most. */
  required: number;
  available: number;
}

const EXTENSIONS: Record<ImageFormat, string> = { raw: 'raw', qcow2: 'qcow2', vmdk: 'vmdk' };
const CONTENT_TYPES: Record<ImageFormat, string> = {
  raw: 'application/octet-stream',
  qcow2: 'application/x-qemu-disk',
  vmdk: 'application/x-vmdk',
};
const CONVERT_TIMEOUT_MS = 24 * 3600 * 1000;

export class ImageDownloader {
  private readonly log: (message: string) => void;
  private readonly reserve: number;

  constructor(private readonly options: ImageDownloaderOptions) {
    this.log = options.log ?? (() => undefined);
    this.reserve = options.reserveBytes ?? 64 * 1024 * 1024;
  }

  /** Remove scratch files and FUSE exports a crashed predecessor left. */
  async cleanupOrphans(): Promise<number> {
    await mkdir(this.options.workDir, { recursive: true, mode: 0o700 });
    const dirs = await readdir(this.options.workDir);
    for (const proc of await findProcesses(`${this.options.workDir}/`)) await terminate(proc.pid, 3000);
    for (const d of dirs) {
      const dir = join(this.options.workDir, d);
      // A FUSE file left mounted by a killed daemon: unmount it before removing the directory.
      await releaseFuseFile(join(dir, 'disk.raw')).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
    return dirs.length;
  }

  /** What a conversion to `format` needs, and what the scratch file system has. */
  async estimate(imagePath: string, format: Exclude<ImageFormat, 'raw'>): Promise<SpaceEstimate> {
    // qemu-img measure knows qcow2 (and raw), not vmdk: a streamOptimized vmdk is
    // compressed, so the qcow2 figure plus its grain overhead (< 1%) bounds it.
    const m = await runJson<{ required: number }>('qemu-img', ['measure', '-U', '--output=json', '-f', 'qcow2', '-O', 'qcow2', imagePath], {
      timeoutMs: 60_000,
    });
    const required = format === 'vmdk' ? Math.ceil(m.required * 1.01) + 1024 * 1024 : m.required;
    await mkdir(this.options.workDir, { recursive: true, mode: 0o700 });
    const fs = await statfs(this.options.workDir);
    return { required, available: Number(fs.bavail) * Number(fs.bsize) };
  }

  async prepare(request: ImageRequest): Promise<PreparedImage> {
    if (!IMAGE_FORMATS.includes(request.format)) throw new ImageFailed(`format ${JSON.stringify(request.format)} is not one of ${IMAGE_FORMATS.join(', ')}`);
    const chain = await this.checkChain(request.imagePath, request.expectedChain);
    const baseName = basename(request.imagePath).replace(/\.qcow2$/, '');
    const fileName = `${baseName}.${EXTENSIONS[request.format]}`;
    const dir = join(this.options.workDir, randomUUID());
    await mkdir(dir, { recursive: true, mode: 0o700 });
    try {
      return request.format === 'raw'
        ? await this.prepareRaw(request, chain.top, dir, fileName)
        : await this.prepareConverted(request, request.format, chain.top, dir, fileName);
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  private async checkChain(imagePath: string, expectedChain?: string[]): Promise<{ top: string; chain: string[] }> {
    let info;
    try {
      info = await readChain(imagePath);
    } catch (err) {
      const why = err instanceof CommandError ? err.stderr.trim() || err.message : (err as Error).message;
      throw new ImageFailed(`restore point ${imagePath} cannot be read: ${why}`);
    }
    if (info.format !== 'qcow2') throw new ImageFailed(`restore point ${imagePath} is ${info.format}, expected qcow2`);
    if (this.options.allowedImageRoots) {
      // Real paths: a symlink in a repository must not point the privileged service at a host file.
      const real = (p: string) => realpath(p).catch(() => resolve(p));
      const roots = await Promise.all(this.options.allowedImageRoots.map(real));
      const files = await Promise.all(info.chain.map(real));
      const outside = files.filter((f) => !roots.some((r) => f.startsWith(`${r}/`)));
      if (outside.length) throw new ImageFailed(`images outside the allowed repositories: ${outside.join(', ')}`);
    }
    if (expectedChain) {
      const expected = expectedChain.map((p) => resolve(p));
      if (JSON.stringify(expected) !== JSON.stringify(info.chain)) {
        throw new ImageFailed(`backing chain of ${imagePath} is ${info.chain.join(' <- ')}, expected ${expected.join(' <- ')}`);
      }
    }
    return { top: info.chain[0] as string, chain: info.chain };
  }

  private async prepareRaw(request: ImageRequest, top: string, dir: string, fileName: string): Promise<PreparedImage> {
    const fuseFile = join(dir, 'disk.raw');
    await writeFile(fuseFile, '');
    let fuse: FuseExport | null = await startFuseExport(top, fuseFile, { format: 'qcow2' });
    const release = async () => {
      const f = fuse;
      fuse = null;
      if (f) {
        await f.daemon.stop(5000).catch(() => undefined);
        await releaseFuseFile(f.fuseFile).catch(() => undefined);
      }
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    };
    try {
      if (request.signal?.aborted) throw new DownloadAborted(`download of ${top} aborted by the client`);
      const size = (await stat(fuseFile)).size;
      const range = request.range?.(size) ?? null;
      const start = range?.start ?? 0;
      const end = range?.end ?? size - 1;
      const stream = size === 0 ? createReadStream(fuseFile, { start: 0, end: -1 }) : createReadStream(fuseFile, { start, end, highWaterMark: 1024 * 1024 });
      stream.once('close', () => void release());
      this.log(`image ${fileName}: raw from ${top} via FUSE, bytes ${start}-${end} of ${size}`);
      return {
        format: 'raw',
        fileName,
        contentType: CONTENT_TYPES.raw,
        size,
        start,
        end,
        length: size === 0 ? 0 : end - start + 1,
        partial: range !== null,
        stream,
        release,
      };
    } catch (err) {
      await release();
      throw err;
    }
  }

  private async prepareConverted(request: ImageRequest, format: 'qcow2' | 'vmdk', top: string, dir: string, fileName: string): Promise<PreparedImage> {
    const space = await this.estimate(top, format);
    if (space.required + this.reserve > space.available) {
      throw new InsufficientSpace(
        `converting ${top} to ${format} needs up to ${space.required} bytes of scratch space in ${this.options.workDir} ` +
          `(plus ${this.reserve} kept free); ${space.available} are free`,
      );
    }
    const out = join(dir, fileName);
    const args =
      format === 'qcow2'
        ? ['convert', '-f', 'qcow2', '-O', 'qcow2', top, out]
        : ['convert', '-f', 'qcow2', '-O', 'vmdk', '-o', 'subformat=streamOptimized', top, out];
    const t0 = Date.now();
    try {
      await run('qemu-img', args, { timeoutMs: CONVERT_TIMEOUT_MS, signal: request.signal });
    } catch (err) {
      if (request.signal?.aborted) throw new DownloadAborted(`download of ${top} as ${format} aborted by the client during the conversion`);
      const why = err instanceof CommandError ? err.stderr.trim() || err.message : (err as Error).message;
      throw new ImageFailed(`qemu-img convert of ${top} to ${format} failed: ${why}`);
    }
    const size = (await stat(out)).size;
    this.log(`image ${fileName}: ${format} from ${top}, ${size} bytes in ${Date.now() - t0} ms`);
    let released = false;
    const release = async () => {
      if (released) return;
      released = true;
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    };
    if (request.signal?.aborted) {
      await release();
      throw new DownloadAborted(`download of ${top} as ${format} aborted by the client`);
    }
    const stream = createReadStream(out, { highWaterMark: 1024 * 1024 });
    // The open file stays readable after the unlink: remove as soon as the stream is done with it.
    stream.once('close', () => void release());
    return { format, fileName, contentType: CONTENT_TYPES[format], size, start: 0, end: size - 1, length: size, partial: false, stream, release };
  }
}
