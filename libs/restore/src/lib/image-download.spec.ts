import { createWriteStream } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { findProcesses, run, waitFor } from '@sendense/process';
import { DownloadAborted, ImageDownloader, ImageFailed, InsufficientSpace, type PreparedImage } from './image-download';

/**
 * Whole-disk image downloads against real qemu-img and qemu-storage-daemon
 * (FUSE): every format converts back to the restore point's data.
 */
jest.setTimeout(120_000);

const MiB = 1024 * 1024;
let dir: string;
let repo: string;
let work: string;
let guest: string;
let full: string;
let incr: string;
let downloader: ImageDownloader;

async function save(image: PreparedImage, path: string): Promise<void> {
  await pipeline(image.stream, createWriteStream(path));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sendense-image-'));
  repo = join(dir, 'repo');
  work = join(dir, 'work');
  await run('mkdir', ['-p', repo, work]);
  // The guest disk (raw) and a full + incremental chain holding it, as backups make them.
  guest = join(dir, 'guest.raw');
  await run('truncate', ['-s', '48M', guest]);
  await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5a 0 6M', '-c', 'write -P 0x6b 30M 3M', guest]);
  full = join(repo, 'full-20260401T000000.qcow2');
  await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', guest, full]);
  incr = join(repo, 'incr-20260401T010000.qcow2');
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', full, '-F', 'qcow2', incr]);
  const change = ['-c', 'write -P 0x7c 2M 1M', '-c', 'write -z 31M 1M', '-c', 'write -P 0x8d 47M 1M'];
  await run('qemu-io', ['-f', 'raw', ...change, guest]);
  await run('qemu-io', ['-f', 'qcow2', ...change, incr]);
  downloader = new ImageDownloader({ workDir: work, allowedImageRoots: [repo] });
  await downloader.cleanupOrphans();
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function scratchIsEmpty(): Promise<void> {
  await waitFor(async () => (await readdir(work)).length === 0, { timeoutMs: 10_000, message: 'the scratch space to be freed' });
  expect(await findProcesses(`${work}/`)).toEqual([]);
}

it.each([
  ['raw', 'raw'],
  ['qcow2', 'qcow2'],
  ['vmdk', 'vmdk'],
] as const)('a %s download of an incremental is the whole disk, self-contained', async (format, qemuFormat) => {
  const image = await downloader.prepare({ imagePath: incr, format });
  expect(image.fileName).toBe(`incr-20260401T010000.${format}`);
  const out = join(dir, `out.${format}`);
  await save(image, out);
  await scratchIsEmpty();
  // No backing file left in the converted formats, and the data is the guest's.
  const info = JSON.parse((await run('qemu-img', ['info', '--output=json', '-f', qemuFormat, out])).stdout) as Record<string, unknown>;
  expect(info['backing-filename']).toBeUndefined();
  if (format === 'vmdk') expect(JSON.stringify(info['format-specific'])).toContain('streamOptimized');
  await run('qemu-img', ['compare', '-f', 'raw', '-F', qemuFormat, guest, out]);
  if (format === 'raw') expect(image).toMatchObject({ size: 48 * MiB, length: 48 * MiB, partial: false });
});

it('a raw download honours a byte range', async () => {
  const start = 2 * MiB - 100;
  const end = 3 * MiB + 99;
  const image = await downloader.prepare({ imagePath: incr, format: 'raw', range: (size) => ({ start, end: Math.min(end, size - 1) }) });
  expect(image).toMatchObject({ partial: true, start, end, length: end - start + 1, size: 48 * MiB });
  const out = join(dir, 'range.bin');
  await save(image, out);
  const got = await readFile(out);
  const want = (await readFile(guest)).subarray(start, end + 1);
  expect(got.equals(want)).toBe(true);
  await scratchIsEmpty();
});

it('refuses a conversion the scratch space cannot hold, before starting it', async () => {
  const tight = new ImageDownloader({ workDir: work, allowedImageRoots: [repo], reserveBytes: 1024 ** 5 });
  const err = await tight.prepare({ imagePath: incr, format: 'qcow2' }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(InsufficientSpace);
  expect((err as Error).message).toMatch(/needs up to \d+ bytes of scratch space .* are free/);
  const estimate = await downloader.estimate(incr, 'qcow2');
  // The allocated data (9 MiB after the zeroed range) plus metadata, not the 48 MiB virtual size.
  expect(estimate.required).toBeGreaterThan(9 * MiB);
  expect(estimate.required).toBeLessThan(16 * MiB);
  await scratchIsEmpty();
});

it('refuses images outside the allowed roots and chains that differ from the expected one', async () => {
  const outside = join(dir, 'outside.qcow2');
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', outside, '1M']);
  await expect(downloader.prepare({ imagePath: outside, format: 'raw' })).rejects.toThrow(/outside the allowed repositories/);
  await expect(downloader.prepare({ imagePath: incr, format: 'raw', expectedChain: [incr] })).rejects.toThrow(ImageFailed);
  await expect(downloader.prepare({ imagePath: join(repo, 'nope.qcow2'), format: 'raw' })).rejects.toThrow(ImageFailed);
  await scratchIsEmpty();
});

it('a client that goes away stops the conversion and frees its scratch file', async () => {
  // Incompressible data makes the streamOptimized conversion take long enough to interrupt.
  const big = join(repo, 'full-20260401T020000.qcow2');
  const raw = join(dir, 'big.raw');
  await run('dd', ['if=/dev/urandom', `of=${raw}`, 'bs=1M', 'count=384', 'status=none']);
  await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, big]);
  await rm(raw);
  const abort = new AbortController();
  const pending = downloader.prepare({ imagePath: big, format: 'vmdk', signal: abort.signal });
  await waitFor(async () => (await findProcesses((argv) => argv[0]?.endsWith('qemu-img') === true && argv.includes(big))).length > 0, {
    timeoutMs: 10_000,
    intervalMs: 20,
    message: 'qemu-img convert to start',
  });
  abort.abort();
  await expect(pending).rejects.toThrow(DownloadAborted);
  await scratchIsEmpty();
  expect(await findProcesses((argv) => argv[0]?.endsWith('qemu-img') === true && argv.includes(big))).toEqual([]);
});

it('cleans up what a crashed predecessor left', async () => {
  const left = join(work, 'left-over');
  await run('mkdir', ['-p', left]);
  await writeFile(join(left, 'x.qcow2'), 'partial');
  expect(await downloader.cleanupOrphans()).toBe(1);
  await scratchIsEmpty();
});
