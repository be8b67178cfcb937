import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EntryNotFound, PathRejected } from './errors';
import { octalMode } from './file-browser';
import { parseBlkidExport, driverFor } from './filesystem';
import { qsdArgs, isOurQsd } from './fuse-export';
import { contentDisposition, parseRangeHeader } from './http-range';
import { parseSfdiskJson } from './partition-table';
import { normalizeUserPath, resolveInside } from './safe-path';

describe('parseRangeHeader', () => {
  it.each([
    [undefined, 100, { kind: 'none' }],
    ['bytes=0-9', 100, { kind: 'range', start: 0, end: 9 }],
    ['bytes=90-', 100, { kind: 'range', start: 90, end: 99 }],
    ['bytes=90-1000', 100, { kind: 'range', start: 90, end: 99 }],
    ['bytes=-10', 100, { kind: 'range', start: 90, end: 99 }],
    ['bytes=-1000', 100, { kind: 'range', start: 0, end: 99 }],
    ['bytes=100-', 100, { kind: 'unsatisfiable' }],
    ['bytes=-0', 100, { kind: 'unsatisfiable' }],
    ['bytes=-5', 0, { kind: 'unsatisfiable' }],
    ['bytes=5-2', 100, { kind: 'none' }],
    ['bytes=0-1,5-6', 100, { kind: 'none' }],
    ['items=0-1', 100, { kind: 'none' }],
    ['bytes=-', 100, { kind: 'none' }],
  ])('%j of %i bytes', (header, size, expected) => {
    expect(parseRangeHeader(header, size)).toEqual(expected);
  });

  it('encodes any file name for Content-Disposition', () => {
    expect(contentDisposition('a "b".txt')).toBe(`attachment; filename="a _b_.txt"; filename*=UTF-8''a%20%22b%22.txt`);
    expect(contentDisposition("Ü'(x).txt")).toContain("filename*=UTF-8''%C3%9C%27%28x%29.txt");
  });
});

describe('parseSfdiskJson', () => {
  it('maps MBR partitions to byte ranges and skips the extended container', () => {
    const t = parseSfdiskJson({
      partitiontable: {
        label: 'dos',
        device: '/run/x/fuse/id.img',
        sectorsize: 512,
        partitions: [
          { node: '/run/x/fuse/id.img1', start: 2048, size: 1000, type: '83' },
          { node: '/run/x/fuse/id.img2', start: 4096, size: 8000, type: 'f' },
          { node: '/run/x/fuse/id.img5', start: 6144, size: 2000, type: '7' },
        ],
      },
    });
    expect(t.partitions).toEqual([
      { index: 1, name: 'p1', offsetBytes: 2048 * 512, sizeBytes: 1000 * 512, type: '83' },
      { index: 5, name: 'p5', offsetBytes: 6144 * 512, sizeBytes: 2000 * 512, type: '7' },
    ]);
  });

  it('handles devices whose name ends in a digit (nbd0p1) and 4k sectors', () => {
    const t = parseSfdiskJson({
      partitiontable: { label: 'gpt', device: '/dev/nbd0', sectorsize: 4096, partitions: [{ node: '/dev/nbd0p2', start: 256, size: 10, type: 'x' }] },
    });
    expect(t.partitions[0]).toMatchObject({ index: 2, name: 'p2', offsetBytes: 256 * 4096, sizeBytes: 40960 });
  });
});

describe('filesystem helpers', () => {
  it('parses blkid export output', () => {
    expect(parseBlkidExport('DEVNAME=/dev/loop0\nUUID=ab=cd\nTYPE=ext4\n\n')).toEqual({ DEVNAME: '/dev/loop0', UUID: 'ab=cd', TYPE: 'ext4' });
  });

  it('chooses read-only options per filesystem', async () => {
    expect(await driverFor('ext3')).toEqual({ kind: 'kernel', fsType: 'ext4', options: ['ro', 'nosuid', 'nodev', 'noexec', 'noload'] });
    expect(await driverFor('xfs')).toMatchObject({ options: expect.arrayContaining(['ro', 'norecovery', 'nouuid']) });
    expect(await driverFor('ntfs')).toMatchObject({ fsType: 'ntfs-3g' });
    expect((await driverFor('vfat'))?.options).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev', 'noexec']));
    expect(await driverFor('swap')).toBeNull();
  });
});

describe('qemu-storage-daemon arguments', () => {
  it('opens the chain read-only, exports writable=off, and recognizes its own processes', () => {
    const args = qsdArgs('/repo/a,b.qcow2', '/run/r/fuse/x.img', { forceShare: true });
    const blockdev = JSON.parse(args[1]!);
    expect(blockdev).toMatchObject({ driver: 'qcow2', 'read-only': true, 'force-share': true, file: { filename: '/repo/a,b.qcow2', 'read-only': true } });
    expect(JSON.parse(args[3]!)).toMatchObject({ type: 'fuse', mountpoint: '/run/r/fuse/x.img', writable: false });
    expect(isOurQsd(['/usr/bin/qemu-storage-daemon', ...args], '/run/r/fuse')).toBe(true);
    expect(isOurQsd(['/usr/bin/qemu-storage-daemon', ...args], '/run/other/fuse')).toBe(false);
    expect(isOurQsd(['/usr/bin/qemu-nbd', ...args], '/run/r/fuse')).toBe(false);
  });
});

describe('safe paths', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp('/tmp/sendense-safe-path-');
    await mkdir(join(root, 'p1/a'), { recursive: true });
    await writeFile(join(root, 'p1/a/f'), 'x');
    await symlink('a', join(root, 'p1/in'));
    await symlink('/etc', join(root, 'p1/out'));
    await symlink('loop2', join(root, 'p1/loop1'));
    await symlink('loop1', join(root, 'p1/loop2'));
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  it('normalizes harmless forms', () => {
    expect(normalizeUserPath(root, '')).toEqual([]);
    expect(normalizeUserPath(root, '/')).toEqual([]);
    expect(normalizeUserPath(root, './p1//a/./f/')).toEqual(['p1', 'a', 'f']);
    expect(normalizeUserPath(root, `${root}/p1`)).toEqual(['p1']);
    expect(normalizeUserPath(root, root)).toEqual([]);
  });

  it.each([['..'], ['p1/..'], ['/etc'], ['/tmp/elsewhere/x'], ['a\0b'], ['x'.repeat(5000)]])('rejects %j', (p) => {
    expect(() => normalizeUserPath(root, p)).toThrow(PathRejected);
  });

  it('rejects non-strings', () => {
    expect(() => normalizeUserPath(root, 5 as unknown as string)).toThrow(PathRejected);
  });

  it('follows inside symlinks, refuses outside ones and loops', async () => {
    expect((await resolveInside(root, 'p1/in/f')).real).toBe(join(root, 'p1/a/f'));
    await expect(resolveInside(root, 'p1/out')).rejects.toThrow(PathRejected);
    expect((await resolveInside(root, 'p1/out', { followFinal: false })).real).toBe(join(root, 'p1/out'));
    await expect(resolveInside(root, 'p1/out/passwd', { followFinal: false })).rejects.toThrow(PathRejected);
    await expect(resolveInside(root, 'p1/loop1')).rejects.toThrow(PathRejected);
    await expect(resolveInside(root, 'p1/missing')).rejects.toThrow(EntryNotFound);
    await expect(resolveInside(root, 'p1/a/f/g')).rejects.toThrow(EntryNotFound);
  });
});

describe('octalMode', () => {
  it('writes permission bits as ls and chmod do', () => {
    expect(octalMode(0o100644)).toBe('0644');
    expect(octalMode(0o40755)).toBe('0755');
    expect(octalMode(0o104755)).toBe('4755');
    expect(octalMode(0)).toBe('0000');
  });
});
