import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, open, readdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { extract } from 'tar-stream';
import { Daemon, findProcesses, readProcMounts, run, waitFor } from '@sendense/process';
import {
  applyModel,
  applyModelFat,
  attachRw,
  detach,
  bigFileRange,
  bigFileSha,
  fileSha,
  mkfs,
  modelSummary,
  partitionedRaw,
  randomData,
  sha256,
  takeRestorePoint,
  withRwMount,
  type BigFile,
  type Model,
  type Node,
} from '../../test/fixtures';
import { EntryNotFound, MountFailed, MountNotFound, NotADirectory, NotAFile, PathRejected, RangeNotSatisfiable } from './errors';
import { FileBrowser } from './file-browser';
import { isOurQsd } from './fuse-export';
import { listLoops } from './loop-device';
import { MountManager, type MountInfo } from './mount-manager';
import { nbdAvailable } from './nbd-connect';

/**
 * End to end on real images: GPT (ext4 + xfs) and MBR (vfat + NTFS) disks,
 * chains of a full and incrementals built like backups, every restore point
 * mounted and compared with what the guest held at that point.
 */

jest.setTimeout(300_000);

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

const file = (data: Buffer | string): Node => ({ kind: 'file', data: Buffer.isBuffer(data) ? data : Buffer.from(data) });
const dir: Node = { kind: 'dir' };
const link = (target: string): Node => ({ kind: 'symlink', target });

interface Point {
  image: string;
  models: Record<string, Model>;
}

let work: string;
let mountRoot: string;
let runDir: string;
let manager: MountManager;
let browser: FileBrowser;
const gpt: Point[] = [];
const mbr: Point[] = [];
let bareImage: string;
let blankImage: string;
let brokenImage: string;
const imageSums = new Map<string, string>();

const big0: BigFile = {
  size: GiB + 100 * MiB + 123,
  chunks: [
    { offset: 0, data: randomData(MiB) },
    { offset: 300 * MiB + 7, data: randomData(MiB) },
    { offset: 700 * MiB, data: randomData(2 * MiB) },
    { offset: GiB + 100 * MiB + 123 - 4096 - 5, data: randomData(4096) },
  ],
};
const big1: BigFile = { ...big0, chunks: [...big0.chunks.slice(0, 2), { offset: 700 * MiB, data: randomData(2 * MiB) }, big0.chunks[3]!] };

function ext4Models(): Model[] {
  const m0: Model = new Map<string, Node>([
    ['docs', dir],
    ['docs/hello world.txt', file('hello from the full backup\n')],
    ['docs/Ünïcødé – файл.txt', file(randomData(70000))],
    ['docs/empty.bin', file(Buffer.alloc(0))],
    ['docs/sub', dir],
    ['docs/sub/deep.txt', file('deep\n')],
    ['big.bin', { kind: 'big', big: big0 }],
    ['links', dir],
    ['links/to-docs', link('../docs')],
    ['links/etc', link('/etc')],
    ['links/passwd', link('/etc/passwd')],
    ['links/escape', link('../../../../../../../../../etc/passwd')],
    ['links/dangling', link('nowhere')],
  ]);
  const m1 = new Map(m0);
  m1.set('docs/hello world.txt', file('changed in the first incremental\n'));
  m1.delete('docs/sub/deep.txt');
  m1.set('docs/new file.txt', file(randomData(5000)));
  m1.set('big.bin', { kind: 'big', big: big1 });
  const m2 = new Map(m1);
  m2.set('links/to-docs', link('../docs/sub'));
  m2.set('docs/empty2', file(Buffer.alloc(0)));
  m2.set('docs/Ünïcødé – файл.txt', file(randomData(12345)));
  return [m0, m1, m2];
}

function xfsModels(): Model[] {
  const m0: Model = new Map<string, Node>([
    ['data', dir],
    ['data/report 2025.csv', file('a,b\n1,2\n')],
    ['data/ñandú.txt', file(randomData(300000))],
    ['empty', file(Buffer.alloc(0))],
    ['rel', link('data')],
  ]);
  const m1 = new Map(m0);
  m1.set('data/report 2025.csv', file('a,b\n1,2\n3,4\n'));
  const m2 = new Map(m1);
  m2.delete('data/ñandú.txt');
  m2.set('data/後で.txt', file('later\n'));
  return [m0, m1, m2];
}

function fatModels(): Model[] {
  const m0: Model = new Map<string, Node>([
    ['Docs Folder', dir],
    ['Docs Folder/Readme Notes.txt', file('fat readme\n')],
    ['Ünïcode Name.txt', file(randomData(9000))],
    ['Empty File.txt', file(Buffer.alloc(0))],
  ]);
  const m1 = new Map(m0);
  m1.set('Docs Folder/Readme Notes.txt', file('fat readme, second version\n'));
  m1.set('Added Later.bin', file(randomData(40000)));
  return [m0, m1];
}

function ntfsModels(): Model[] {
  const m0: Model = new Map<string, Node>([
    ['Users', dir],
    ['Users/Alice Smith', dir],
    ['Users/Alice Smith/Résumé final.docx', file(randomData(150000))],
    ['Users/Alice Smith/empty.txt', file(Buffer.alloc(0))],
    ['Windows', dir],
  ]);
  const m1 = new Map(m0);
  m1.delete('Users/Alice Smith/empty.txt');
  m1.set('Users/Alice Smith/Résumé final.docx', file(randomData(160000)));
  m1.set('Windows/win.ini', file('[fonts]\n'));
  return [m0, m1];
}

async function buildGpt(): Promise<void> {
  const raw = join(work, 'gpt.raw');
  const parts = await partitionedRaw(raw, 1800, 'gpt', [
    { sizeMiB: 1400, type: 'L' },
    { sizeMiB: 340, type: 'L' },
  ]);
  const [p1, p2] = parts as [{ offset: number; size: number }, { offset: number; size: number }];
  await mkfs(raw, p1, 'ext4');
  await mkfs(raw, p2, 'xfs');
  const e = ext4Models();
  const x = xfsModels();
  for (let i = 0; i < e.length; i++) {
    await withRwMount(raw, p1, 'ext4', work, (d) => applyModel(d, e[i]!, e[i - 1]));
    await withRwMount(raw, p2, 'xfs', work, (d) => applyModel(d, x[i]!, x[i - 1]));
    const image = join(work, i === 0 ? 'gpt-full.qcow2' : `gpt-incr${i}.qcow2`);
    await takeRestorePoint(raw, image, gpt[i - 1]?.image);
    gpt.push({ image, models: { p1: e[i]!, p2: x[i]! } });
  }
  await rm(raw);
}

async function buildMbr(): Promise<void> {
  const raw = join(work, 'mbr.raw');
  const parts = await partitionedRaw(raw, 200, 'dos', [{ sizeMiB: 64, type: 'c' }, { type: '7' }]);
  const [p1, p2] = parts as [{ offset: number; size: number }, { offset: number; size: number }];
  await mkfs(raw, p1, 'vfat');
  await mkfs(raw, p2, 'ntfs');
  const f = fatModels();
  const n = ntfsModels();
  for (let i = 0; i < f.length; i++) {
    await applyModelFat(raw, p1.offset, f[i]!, f[i - 1] ?? new Map(), work);
    await withRwMount(raw, p2, 'ntfs-3g', work, (d) => applyModel(d, n[i]!, n[i - 1]));
    const image = join(work, i === 0 ? 'mbr-full.qcow2' : `mbr-incr${i}.qcow2`);
    await takeRestorePoint(raw, image, mbr[i - 1]?.image);
    mbr.push({ image, models: { p1: f[i]!, p2: n[i]! } });
  }
  await rm(raw);
}

async function buildBare(): Promise<void> {
  // A disk without a partition table: the filesystem starts at byte 0.
  const raw = join(work, 'bare.raw');
  await run('truncate', ['-s', '64M', raw]);
  await run('mkfs.ext4', ['-q', '-F', raw]);
  const bare: Model = new Map<string, Node>([
    ['only.txt', file('bare disk\n')],
    ['many', dir],
  ]);
  // A large directory, for pagination.
  for (let i = 0; i < 3000; i++) bare.set(`many/f${String(i).padStart(5, '0')}`, file(Buffer.alloc(0)));
  await withRwMount(raw, { offset: 0, size: 64 * MiB }, 'ext4', work, async (d) => {
    await applyModel(d, bare);
    // A latin1 name (not UTF-8), as old guests have them.
    await writeFile(Buffer.concat([Buffer.from(`${d}/caf`), Buffer.from([0xe9]), Buffer.from('.txt')]), 'latin1 name\n');
  });
  bareImage = join(work, 'bare.qcow2');
  await takeRestorePoint(raw, bareImage);
  await rm(raw);
  // One good and one damaged ext4 (group descriptors zeroed: blkid still
  // sees ext4, mount fails).
  const braw = join(work, 'broken.raw');
  const bparts = await partitionedRaw(braw, 80, 'gpt', [{ sizeMiB: 32, type: 'L' }, { type: 'L' }]);
  await mkfs(braw, bparts[0]!, 'ext4');
  await withRwMount(braw, bparts[0]!, 'ext4', work, (d) => applyModel(d, new Map([['ok.txt', file('fine\n')]])));
  const bdev = await attachRw(braw, bparts[1]!.offset, bparts[1]!.size);
  await run('mkfs.ext4', ['-q', '-F', '-b', '4096', bdev]);
  await detach(bdev);
  const fh = await open(braw, 'r+');
  await fh.write(Buffer.alloc(4096), 0, 4096, bparts[1]!.offset + 4096);
  await fh.close();
  brokenImage = join(work, 'broken.qcow2');
  await takeRestorePoint(braw, brokenImage);
  await rm(braw);
  blankImage = join(work, 'blank.qcow2');
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', blankImage, '64M']);
}

async function sha(stream: Readable): Promise<{ sha: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream) {
    h.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha: h.digest('hex'), bytes };
}

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** Walk a partition through the browser (small pages, to exercise paging). */
async function walk(mountId: string, base: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const visit = async (path: string) => {
    let offset = 0;
    for (;;) {
      const page = await browser.list(mountId, path, { offset, limit: 2 });
      for (const e of page.entries) {
        const rel = e.path.slice(base.length + 1);
        if (rel === 'lost+found') continue;
        if (e.type === 'dir') {
          out.set(rel, 'dir');
          await visit(e.path);
        } else if (e.type === 'symlink') out.set(rel, `symlink:${e.symlinkTarget}`);
        else out.set(rel, `file:${e.size}`);
      }
      offset += page.entries.length;
      if (offset >= page.total) break;
    }
  };
  await visit(base);
  return out;
}

async function checkPartition(mountId: string, part: string, model: Model, { bigFiles }: { bigFiles: boolean }): Promise<void> {
  const listed = await walk(mountId, part);
  expect(new Map([...listed].sort())).toEqual(new Map([...modelSummary(model)].sort()));
  for (const [p, node] of model) {
    if (node.kind === 'file') {
      const r = await browser.openRead(mountId, `${part}/${p}`);
      expect(r.size).toBe(node.data.length);
      const got = await sha(r.stream);
      expect(got.bytes).toBe(node.data.length);
      expect(got.sha).toBe(sha256(node.data));
    } else if (node.kind === 'big' && bigFiles) {
      const r = await browser.openRead(mountId, `${part}/${p}`);
      expect(r.size).toBe(node.big.size);
      expect(r.length).toBe(node.big.size);
      const got = await sha(r.stream);
      expect(got.bytes).toBe(node.big.size);
      expect(got.sha).toBe(bigFileSha(node.big));
      // A range that straddles a data chunk and its hole.
      const c = node.big.chunks[2]!;
      const start = c.offset - 1000;
      const end = c.offset + 5000;
      const ranged = await browser.openRead(mountId, `${part}/${p}`, { start, end });
      expect(ranged.length).toBe(6001);
      expect((await collect(ranged.stream)).equals(bigFileRange(node.big, start, end))).toBe(true);
    }
  }
}

async function leftovers(): Promise<{ mounts: string[]; loops: string[]; qsd: number[] }> {
  const mounts = (await readProcMounts()).map((m) => m.target).filter((t) => t.startsWith(`${work}/`));
  const loops = (await listLoops()).filter((l) => l.backFile.startsWith(`${work}/`)).map((l) => l.name);
  const qsd = (await findProcesses((argv) => isOurQsd(argv, join(runDir, 'fuse')))).map((p) => p.pid);
  return { mounts, loops, qsd };
}

beforeAll(async () => {
  work = await mkdtemp('/tmp/sendense-restore-');
  mountRoot = join(work, 'mnt');
  runDir = join(work, 'run');
  await buildGpt();
  await buildMbr();
  await buildBare();
  for (const img of [...gpt, ...mbr].map((p) => p.image).concat(bareImage, blankImage, brokenImage)) imageSums.set(img, await fileSha(img));
  manager = new MountManager({ mountRoot, runDir, mode: 'fuse', idleTimeoutMs: 0 });
  browser = new FileBrowser(manager);
  await manager.cleanupOrphans();
});

afterAll(async () => {
  await manager?.close();
  if (work) {
    const left = await leftovers();
    expect(left).toEqual({ mounts: [], loops: [], qsd: [] });
    await rm(work, { recursive: true, force: true });
  }
});

describe('restore points', () => {
  it.each([0, 1, 2])('GPT restore point %i (ext4 + xfs) shows exactly what the guest had', async (i) => {
    const point = gpt[i]!;
    const info = await manager.mount({ imagePath: point.image });
    try {
      expect(info.partitionTable).toBe('gpt');
      expect(info.chain).toHaveLength(i + 1);
      expect(info.partitions.map((p) => [p.name, p.fsType, p.mounted])).toEqual([
        ['p1', 'ext4', true],
        ['p2', 'xfs', true],
      ]);
      const root = await browser.list(info.mountId, '/');
      expect(root.entries.map((e) => [e.name, e.type])).toEqual([
        ['p1', 'dir'],
        ['p2', 'dir'],
      ]);
      await checkPartition(info.mountId, 'p1', point.models['p1']!, { bigFiles: i !== 1 });
      await checkPartition(info.mountId, 'p2', point.models['p2']!, { bigFiles: false });
      // Mount options keep everything read-only, journal replay included.
      const procMounts = (await readProcMounts()).filter((m) => m.target.startsWith(info.root));
      expect(procMounts).toHaveLength(2);
      for (const m of procMounts) expect(m.options.split(',')).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev', 'noexec']));
      expect(procMounts.find((m) => m.fsType === 'xfs')?.options).toContain('norecovery');
    } finally {
      await manager.unmount(info.mountId);
    }
    expect(existsSync(info.root)).toBe(false);
  });

  it.each([0, 1])('MBR restore point %i (vfat + NTFS) shows exactly what the guest had', async (i) => {
    const point = mbr[i]!;
    const info = await manager.mount({ imagePath: point.image });
    try {
      expect(info.partitionTable).toBe('dos');
      expect(info.partitions.map((p) => [p.name, p.fsType, p.mounted])).toEqual([
        ['p1', 'vfat', true],
        ['p2', 'ntfs', true],
      ]);
      await checkPartition(info.mountId, 'p1', point.models['p1']!, { bigFiles: false });
      await checkPartition(info.mountId, 'p2', point.models['p2']!, { bigFiles: false });
    } finally {
      await manager.unmount(info.mountId);
    }
  });

  it('mounts a disk without a partition table as "disk"', async () => {
    const info = await manager.mount({ imagePath: bareImage });
    try {
      expect(info.partitionTable).toBeNull();
      expect(info.partitions.map((p) => [p.name, p.fsType, p.mounted])).toEqual([['disk', 'ext4', true]]);
      const r = await browser.openRead(info.mountId, 'disk/only.txt');
      expect((await collect(r.stream)).toString()).toBe('bare disk\n');
      // Pages of a large directory: sorted, stable, with the total.
      const last = await browser.list(info.mountId, 'disk/many', { offset: 2500, limit: 1000 });
      expect(last.total).toBe(3000);
      expect(last.entries).toHaveLength(500);
      expect(last.entries[0]!.name).toBe('f02500');
      expect(last.entries[499]!.name).toBe('f02999');
      const first = await browser.list(info.mountId, 'disk/many', { limit: 100000 });
      expect(first.limit).toBe(10000);
      expect(first.entries).toHaveLength(3000);
      const top = await browser.list(info.mountId, 'disk');
      const latin1 = top.entries.find((e) => e.nameNotUtf8);
      expect(latin1).toMatchObject({ name: 'caf\ufffd.txt', type: 'file', size: 12 });
      const tar = await browser.archive(info.mountId, 'disk');
      const names = new Map<string, number>();
      const ex = extract();
      const done = new Promise<void>((res, rej) => {
        ex.on('entry', (h, body, next) => {
          names.set(h.name, h.size ?? 0);
          body.on('end', next);
          body.resume();
        });
        ex.on('finish', res);
        ex.on('error', rej);
      });
      tar.stream.pipe(ex as unknown as NodeJS.WritableStream);
      await done;
      expect(names.get('disk/caf\ufffd.txt')).toBe(12);
      expect(names.size).toBe(3000 + 5); // root, lost+found, many, only.txt, the latin1 file, 3000 files
      const defaults = await browser.list(info.mountId, 'disk/many', { offset: -5 });
      expect(defaults.offset).toBe(0);
      expect(defaults.entries).toHaveLength(500);
    } finally {
      await manager.unmount(info.mountId);
    }
  });

  it('mounts the good partitions of a disk with a damaged filesystem and reports the other', async () => {
    const info = await manager.mount({ imagePath: brokenImage });
    try {
      expect(info.partitions.map((p) => [p.name, p.fsType, p.mounted])).toEqual([
        ['p1', 'ext4', true],
        ['p2', 'ext4', false],
      ]);
      expect(info.partitions[1]!.error).toMatch(/mount failed/);
      expect((await browser.list(info.mountId, '')).entries.map((e) => e.name)).toEqual(['p1']);
      expect((await collect((await browser.openRead(info.mountId, 'p1/ok.txt')).stream)).toString()).toBe('fine\n');
      expect((await leftovers()).loops).toHaveLength(1);
    } finally {
      await manager.unmount(info.mountId);
    }
  });

  it('refuses an image without any filesystem and leaves nothing behind', async () => {
    await expect(manager.mount({ imagePath: blankImage })).rejects.toThrow(MountFailed);
    await expect(manager.mount({ imagePath: join(work, 'missing.qcow2') })).rejects.toThrow(MountFailed);
    await expect(manager.mount({ imagePath: bareImage, mountId: '../../etc' })).rejects.toThrow(MountFailed);
    expect(await readdir(mountRoot)).toEqual([]);
    expect(await readdir(join(runDir, 'state'))).toEqual([]);
  });
});

describe('several mounts', () => {
  it('mounts the same restore point twice, independently', async () => {
    const a = await manager.mount({ imagePath: gpt[2]!.image });
    const b = await manager.mount({ imagePath: gpt[2]!.image });
    try {
      expect(a.mountId).not.toBe(b.mountId);
      expect(
        manager
          .list()
          .map((m) => m.mountId)
          .sort(),
      ).toEqual([a.mountId, b.mountId].sort());
      expect(manager.isImageInUse(gpt[0]!.image)).toBe(true);
      expect(manager.imagesInUse().sort()).toEqual(gpt.map((p) => resolve(p.image)).sort());
      await expect(manager.mount({ imagePath: gpt[2]!.image, mountId: a.mountId })).rejects.toThrow(/already in use/);
      // qemu's image locks held by the export refuse a writer (consolidation,
      // a stray qemu-io) on any image of a mounted chain.
      await expect(run('qemu-io', ['-f', 'qcow2', '-c', 'write 0 512', gpt[0]!.image])).rejects.toThrow(/lock/);
      const reused = await manager.mount({ imagePath: gpt[2]!.image, reuse: true });
      expect([a.mountId, b.mountId]).toContain(reused.mountId);
      await manager.unmount(a.mountId);
      await expect(browser.list(a.mountId, '/')).rejects.toThrow(MountNotFound);
      const page = await browser.list(b.mountId, 'p2/data');
      expect(page.entries.map((e) => e.name)).toEqual(['report 2025.csv', '後で.txt']);
    } finally {
      await manager.unmount(b.mountId).catch(() => undefined);
      await manager.unmount(a.mountId).catch(() => undefined);
    }
    expect(manager.isImageInUse(gpt[0]!.image)).toBe(false);
  });
});

describe('concurrent mounts', () => {
  it('ten parallel mounts of one restore point with reuse share one mount (one set of loop devices)', async () => {
    // Only this manager's loop devices (other processes on the host may attach their own meanwhile).
    const ours = async () => (await listLoops()).filter((l) => l.backFile.startsWith(resolve(runDir))).length;
    const loopsBefore = await ours();
    const infos = await Promise.all(Array.from({ length: 10 }, () => manager.mount({ imagePath: gpt[1]!.image, reuse: true })));
    try {
      expect(new Set(infos.map((i) => i.mountId)).size).toBe(1);
      expect(manager.list().filter((m) => m.mountId === infos[0]!.mountId)).toHaveLength(1);
      // One mount of a GPT disk with two file systems: two loop devices, not twenty.
      expect((await ours()) - loopsBefore).toBe(infos[0]!.partitions.length);
    } finally {
      await manager.unmount(infos[0]!.mountId);
    }
  });

  it('refuses a mount beyond maxMounts with what to do, and mounts again once one is gone', async () => {
    const capped = new MountManager({ mountRoot, runDir: join(work, 'run-capped'), mode: 'fuse', idleTimeoutMs: 0, maxMounts: 1 });
    const first = await capped.mount({ imagePath: gpt[0]!.image });
    try {
      await expect(capped.mount({ imagePath: gpt[1]!.image })).rejects.toThrow(/limit \(RESTORE_MAX_MOUNTS=1\).*unmount/);
      // Reusing the mount that exists is not a new mount.
      expect((await capped.mount({ imagePath: gpt[0]!.image, reuse: true })).mountId).toBe(first.mountId);
    } finally {
      await capped.unmount(first.mountId);
    }
    const again = await capped.mount({ imagePath: gpt[1]!.image });
    await capped.unmount(again.mountId);
  });

  it('mounts several restore points in parallel', async () => {
    const infos = await Promise.all([gpt[0]!, gpt[1]!, mbr[1]!, gpt[2]!].map((p) => manager.mount({ imagePath: p.image })));
    try {
      const hostPaths = infos.flatMap((i) => i.partitions.map((p) => p.hostPath));
      expect(new Set(hostPaths).size).toBe(8);
      const reads = await Promise.all(
        infos.map(async (i, n) => {
          const path = n === 2 ? 'p1/Docs Folder/Readme Notes.txt' : 'p2/data/report 2025.csv';
          return (await collect((await browser.openRead(i.mountId, path)).stream)).toString();
        }),
      );
      expect(reads).toEqual(['a,b\n1,2\n', 'a,b\n1,2\n3,4\n', 'fat readme, second version\n', 'a,b\n1,2\n3,4\n']);
    } finally {
      await Promise.all(infos.map((i) => manager.unmount(i.mountId)));
    }
  });
});

describe('file browser safety and features', () => {
  let info: MountInfo;
  beforeAll(async () => {
    info = await manager.mount({ imagePath: gpt[0]!.image });
  });
  afterAll(async () => {
    await manager.unmount(info.mountId);
  });

  it('lists symlinks with their targets without following them', async () => {
    const page = await browser.list(info.mountId, 'p1/links');
    expect(page.entries.map((e) => [e.name, e.type, e.symlinkTarget])).toEqual([
      ['dangling', 'symlink', 'nowhere'],
      ['escape', 'symlink', '../../../../../../../../../etc/passwd'],
      ['etc', 'symlink', '/etc'],
      ['passwd', 'symlink', '/etc/passwd'],
      ['to-docs', 'symlink', '../docs'],
    ]);
    const st = await browser.stat(info.mountId, 'p1/links/etc');
    expect(st.type).toBe('symlink');
    // A symlink that stays inside is followed.
    const viaLink = await browser.list(info.mountId, 'p1/links/to-docs');
    expect(viaLink.entries.map((e) => e.name)).toContain('hello world.txt');
  });

  it.each([
    ['../../../etc/passwd'],
    ['p1/../../../../etc/passwd'],
    ['/etc/passwd'],
    [decodeURIComponent('%2e%2e/%2e%2e/etc/passwd')],
    [decodeURIComponent('p1%2F..%2F..%2F..%2Fetc%2Fpasswd')],
    ['p1/links/etc/passwd'],
    ['p1/links/passwd'],
    ['p1/links/escape'],
    ['p1/docs\0/../../etc/passwd'],
  ])('refuses %j and reads nothing outside', async (path) => {
    await expect(browser.openRead(info.mountId, path)).rejects.toThrow(PathRejected);
    await expect(browser.list(info.mountId, path)).rejects.toThrow(PathRejected);
    await expect(browser.archive(info.mountId, path)).rejects.toThrow(PathRejected);
  });

  it('refuses listing through a symlink to /etc', async () => {
    await expect(browser.list(info.mountId, 'p1/links/etc')).rejects.toThrow(PathRejected);
    await expect(browser.stat(info.mountId, 'p1/links/etc/passwd')).rejects.toThrow(PathRejected);
  });

  it('accepts an absolute host path inside the mount, and types its errors', async () => {
    const page = await browser.list(info.mountId, `${info.root}/p1/docs`);
    expect(page.path).toBe('p1/docs');
    await expect(browser.openRead(info.mountId, 'p1/docs/missing')).rejects.toThrow(EntryNotFound);
    await expect(browser.openRead(info.mountId, 'p1/links/dangling')).rejects.toThrow(EntryNotFound);
    await expect(browser.openRead(info.mountId, 'p1/docs')).rejects.toThrow(NotAFile);
    await expect(browser.list(info.mountId, 'p1/docs/hello world.txt')).rejects.toThrow(NotADirectory);
    await expect(browser.archive(info.mountId, 'p1/docs/hello world.txt')).rejects.toThrow(NotADirectory);
    await expect(browser.openRead(info.mountId, 'p1/docs/hello world.txt', { start: 1000 })).rejects.toThrow(RangeNotSatisfiable);
    await expect(browser.openRead(info.mountId, 'p1/docs/hello world.txt', { start: 5, end: 2 })).rejects.toThrow(RangeNotSatisfiable);
    const empty = await browser.openRead(info.mountId, 'p1/docs/empty.bin');
    expect(empty.length).toBe(0);
    expect((await collect(empty.stream)).length).toBe(0);
    const tail = await browser.openRead(info.mountId, 'p1/docs/hello world.txt', { start: 6, end: 10_000 });
    expect((await collect(tail.stream)).toString()).toBe('from the full backup\n');
  });

  it('streams a directory as tar with contents and symlinks intact', async () => {
    const { stream, fileName } = await browser.archive(info.mountId, 'p1');
    expect(fileName).toBe('p1.tar');
    const model = gpt[0]!.models['p1']!;
    const seen = new Map<string, string>();
    const sparse: string[] = [];
    const ex = extract();
    const done = new Promise<void>((res, rej) => {
      ex.on('entry', (header, body, next) => {
        const pax = (header as { pax?: Record<string, string> }).pax ?? {};
        const chunks: Buffer[] = [];
        const h = createHash('sha256');
        const isSparse = pax['GNU.sparse.major'] === '1';
        body.on('data', (c: unknown) => (isSparse ? chunks.push(c as Buffer) : h.update(c as Buffer)));
        body.on('end', () => {
          const name = isSparse ? (pax['GNU.sparse.name'] ?? header.name) : header.name;
          const rel = name.replace(/^p1\/?/, '');
          let size = header.size ?? 0;
          if (isSparse) {
            // GNU.sparse 1.0: a map block (count, then offset/length pairs, NUL-padded to 512) before the data.
            const raw = Buffer.concat(chunks);
            const nums: number[] = [];
            let pos = 0;
            const need = () => {
              const nl = raw.indexOf(10, pos);
              nums.push(Number(raw.subarray(pos, nl).toString()));
              pos = nl + 1;
            };
            need();
            for (let i = 0; i < 2 * (nums[0] ?? 0); i++) need();
            let data = Math.ceil(pos / 512) * 512;
            size = Number(pax['GNU.sparse.realsize']);
            let at = 0;
            const zeros = (n: number) => {
              for (let left = n; left > 0; left -= Math.min(left, 1 << 24)) h.update(Buffer.alloc(Math.min(left, 1 << 24)));
            };
            for (let i = 0; i < (nums[0] ?? 0); i++) {
              const [off, len] = [nums[1 + 2 * i]!, nums[2 + 2 * i]!];
              zeros(off - at);
              h.update(raw.subarray(data, data + len));
              data += len;
              at = off + len;
            }
            zeros(size - at);
            sparse.push(rel);
          }
          if (rel && !rel.startsWith('lost+found')) {
            if (header.type === 'directory') seen.set(rel, 'dir');
            else if (header.type === 'symlink') seen.set(rel, `symlink:${header.linkname}`);
            else seen.set(rel, `file:${size}:${h.digest('hex')}`);
          }
          next();
        });
        body.resume();
      });
      ex.on('finish', res);
      ex.on('error', rej);
    });
    stream.pipe(ex as unknown as NodeJS.WritableStream);
    await done;
    const expected = new Map<string, string>();
    for (const [p, n] of model) {
      if (n.kind === 'dir') expected.set(p, 'dir');
      else if (n.kind === 'symlink') expected.set(p, `symlink:${n.target}`);
      else if (n.kind === 'file') expected.set(p, `file:${n.data.length}:${sha256(n.data)}`);
      else expected.set(p, `file:${n.big.size}:${bigFileSha(n.big)}`);
    }
    expect(new Map([...seen].sort())).toEqual(new Map([...expected].sort()));
    // The 1.1 GB file with a few MiB of data travels sparse (GNU.sparse 1.0), the small ones as they are.
    expect(sparse).toEqual(['big.bin']);
  });

  it('unmounts even while an outside process holds a file open (lazy fallback)', async () => {
    const other = await manager.mount({ imagePath: bareImage });
    const fh = await open(join(other.partitions[0]!.hostPath!, 'only.txt'), 'r');
    const ours = (await listLoops()).filter((l) => l.backFile.includes(other.mountId)).map((l) => l.name);
    expect(ours).toHaveLength(1);
    try {
      await manager.unmount(other.mountId);
      expect((await readProcMounts()).some((m) => m.target.startsWith(other.root))).toBe(false);
      expect(existsSync(other.root)).toBe(false);
    } finally {
      await fh.close();
    }
    // The busy loop device was set to autoclear and goes once the file is closed.
    await waitFor(async () => !(await listLoops()).some((l) => ours.includes(l.name)), { timeoutMs: 10000, message: 'loop autoclear' });
  });

  it('destroys open streams on unmount', async () => {
    const other = await manager.mount({ imagePath: gpt[0]!.image });
    const r = await browser.openRead(other.mountId, 'p1/big.bin');
    expect(manager.get(other.mountId).activeStreams).toBe(1);
    const closed = new Promise((res) => r.stream.once('close', res));
    await manager.unmount(other.mountId);
    await closed;
    expect(r.stream.destroyed).toBe(true);
  });
});

describe('lifecycle', () => {
  it('unmounts an idle mount after the timeout, and an access resets the clock', async () => {
    const idleManager = new MountManager({ mountRoot, runDir, mode: 'fuse', idleTimeoutMs: 1500, idleCheckIntervalMs: 100 });
    const idleBrowser = new FileBrowser(idleManager);
    const unmounted: string[] = [];
    idleManager.on('unmounted', (e: { mountId: string; reason: string }) => unmounted.push(`${e.mountId}:${e.reason}`));
    try {
      const info = await idleManager.mount({ imagePath: bareImage });
      for (let i = 0; i < 4; i++) {
        await new Promise((r) => setTimeout(r, 700));
        await idleBrowser.list(info.mountId, 'disk'); // keeps it alive past the timeout
      }
      expect(idleManager.list()).toHaveLength(1);
      await waitFor(() => unmounted.length > 0, { timeoutMs: 5000, message: 'idle unmount' });
      expect(unmounted).toEqual([`${info.mountId}:idle`]);
      expect(existsSync(info.root)).toBe(false);
    } finally {
      await idleManager.close();
    }
  });

  it('tears a mount down when its qemu-storage-daemon dies', async () => {
    const events: string[] = [];
    const onUnmounted = (e: { mountId: string; reason: string }) => events.push(`${e.mountId}:${e.reason}`);
    manager.on('unmounted', onUnmounted);
    try {
      const info = await manager.mount({ imagePath: gpt[1]!.image });
      const [qsd] = await findProcesses((argv) => isOurQsd(argv, join(runDir, 'fuse')) && argv.some((a) => a.includes(info.mountId)));
      process.kill(qsd!.pid, 'SIGKILL');
      await waitFor(() => events.length > 0, { timeoutMs: 15000, message: 'unmount after export death' });
      expect(events).toEqual([`${info.mountId}:export-died`]);
      expect(await leftovers()).toEqual({ mounts: [], loops: [], qsd: [] });
      expect(existsSync(info.root)).toBe(false);
    } finally {
      manager.off('unmounted', onUnmounted);
    }
  });

  async function crashChild(image: string): Promise<{ child: Daemon; mountId: string }> {
    const repoRoot = resolve(__dirname, '../../../..');
    let mountId = '';
    const child = await Daemon.start(process.execPath, ['--import', 'tsx', join(repoRoot, 'libs/restore/test/crash-child.ts'), mountRoot, runDir, image], {
      cwd: repoRoot,
      env: { ...process.env, TSX_TSCONFIG_PATH: join(repoRoot, 'tsconfig.base.json') },
      onLine: (line) => {
        const m = /^MOUNTED (\S+)/.exec(line);
        if (m) mountId = m[1]!;
      },
    });
    await waitFor(
      () => {
        if (!child.running) throw child.exitError('crash child');
        return mountId !== '';
      },
      { timeoutMs: 60000, message: 'child to mount' },
    );
    child.child.kill('SIGKILL');
    await child.exited;
    return { child, mountId };
  }

  it('cleans up after a service killed with SIGKILL (state files and scans)', async () => {
    const first = await crashChild(gpt[1]!.image);
    const second = await crashChild(mbr[0]!.image);
    // The crash left live mounts, loops and daemons behind.
    let left = await leftovers();
    expect(left.mounts.length).toBeGreaterThanOrEqual(4);
    expect(left.loops.length).toBe(4);
    expect(left.qsd.length).toBe(2);
    // Lose the second state file: only the /proc and losetup scans can find it.
    await rm(join(runDir, 'state', `${second.mountId}.json`));
    const fresh = new MountManager({ mountRoot, runDir, mode: 'fuse', idleTimeoutMs: 0 });
    const report = await fresh.cleanupOrphans();
    expect(report.states).toEqual([first.mountId]);
    expect(report.errors).toEqual([]);
    expect(report.loops).toHaveLength(2);
    expect(report.processes).toHaveLength(1);
    left = await leftovers();
    expect(left).toEqual({ mounts: [], loops: [], qsd: [] });
    expect(await readdir(mountRoot)).toEqual([]);
    expect(await readdir(join(runDir, 'fuse'))).toEqual([]);
    // The manager in this process keeps working.
    await fresh.close();
  });

  (nbdAvailable() ? it : it.skip)('mounts through qemu-nbd --connect on hosts with /dev/nbd*', async () => {
    const info = await manager.mount({ imagePath: gpt[2]!.image, mode: 'nbd' });
    try {
      expect(info.mode).toBe('nbd');
      await checkPartition(info.mountId, 'p2', gpt[2]!.models['p2']!, { bigFiles: false });
    } finally {
      await manager.unmount(info.mountId);
    }
  });

  it('never wrote to any restore point', async () => {
    for (const [img, sum] of imageSums) expect(await fileSha(img)).toBe(sum);
  });
});
