import { createWriteStream } from 'node:fs';
import { link, mkdtemp, mkdir, open, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';
import { extract } from 'tar-stream';
import { run } from '@sendense/process';
import { createTarStream, dataExtents, sparseMap } from './tar-stream';

const MiB = 1024 * 1024;

/** Deterministic, non-zero bytes. */
function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = (x >>> 24) | 1;
  }
  return b;
}

/** A sparse file: `size` bytes of which only `pieces` hold data. */
async function sparseFile(path: string, size: number, pieces: Array<[number, Buffer]>): Promise<void> {
  const fh = await open(path, 'w', 0o640);
  try {
    await fh.truncate(size);
    for (const [at, data] of pieces) await fh.write(data, 0, data.length, at);
  } finally {
    await fh.close();
  }
}

describe('createTarStream', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp('/tmp/sendense-tar-');
    const long = join(dir, 'tree', 'd'.repeat(120), 'é'.repeat(60));
    await mkdir(long, { recursive: true });
    await writeFile(join(long, `${'n'.repeat(150)}.txt`), 'long names\n');
    await symlink('/etc/passwd', join(dir, 'tree', 'abs-link'));
    await run('mkfifo', [join(dir, 'tree', 'fifo')]);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('stores long and non-ASCII names (pax), symlinks as links, and skips FIFOs', async () => {
    const entries: string[] = [];
    const ex = extract();
    const done = new Promise<void>((resolve, reject) => {
      ex.on('entry', (h, body, next) => {
        entries.push(`${h.type}:${h.name}${h.linkname ? `->${h.linkname}` : ''}`);
        body.on('end', next);
        body.resume();
      });
      ex.on('finish', resolve);
      ex.on('error', reject);
    });
    createTarStream(join(dir, 'tree'), 'tree').pipe(ex as unknown as NodeJS.WritableStream);
    await done;
    const d = 'd'.repeat(120);
    const e = 'é'.repeat(60);
    expect(entries).toEqual([
      'directory:tree',
      'symlink:tree/abs-link->/etc/passwd',
      `directory:tree/${d}`,
      `directory:tree/${d}/${e}`,
      `file:tree/${d}/${e}/${'n'.repeat(150)}.txt`,
    ]);
  });

  it('stores a hard-linked file once and its other names as links', async () => {
    const tree = join(dir, 'links');
    await mkdir(join(tree, 'b'), { recursive: true });
    await writeFile(join(tree, 'a.txt'), 'shared\n');
    await link(join(tree, 'a.txt'), join(tree, 'b', 'again.txt'));
    const entries: string[] = [];
    const ex = extract();
    const done = new Promise<void>((resolve, reject) => {
      ex.on('entry', (h, body, next) => {
        let n = 0;
        body.on('data', (c: unknown) => (n += (c as Buffer).length));
        body.on('end', () => {
          entries.push(`${h.type}:${h.name}${h.linkname ? `->${h.linkname}` : ''}:${n}`);
          next();
        });
      });
      ex.on('finish', resolve);
      ex.on('error', reject);
    });
    createTarStream(tree, 'links').pipe(ex as unknown as NodeJS.WritableStream);
    await done;
    expect(entries).toEqual(['directory:links:0', 'file:links/a.txt:7', 'directory:links/b:0', 'link:links/b/again.txt->links/a.txt:0']);
  });

  it('stops producing when the consumer goes away, and reports a missing root', async () => {
    const s = createTarStream(join(dir, 'tree'), 'tree');
    s.destroy();
    await new Promise((r) => s.once('close', r));
    const missing = createTarStream(join(dir, 'nope'), 'nope');
    await expect(
      (async () => {
        for await (const _ of missing) void _;
      })(),
    ).rejects.toThrow(/ENOENT/);
  });

  describe('sparse files (PAX GNU.sparse 1.0)', () => {
    const size = 1536 * MiB; // 1.5 GiB ...
    // ... with 8 MiB of data: at the start, unaligned in the middle, and near the end (a hole follows).
    const pieces: Array<[number, Buffer]> = [
      [0, pattern(1 * MiB, 1)],
      [700 * MiB + 12345, pattern(3 * MiB, 2)],
      [size - 5 * MiB, pattern(4 * MiB, 3)],
    ];
    let tree: string;
    beforeAll(async () => {
      tree = join(dir, 'sparse');
      await mkdir(tree, { recursive: true });
      await sparseFile(join(tree, 'disk image.raw'), size, pieces);
      // One that ends in data, and a plain file next to them.
      await sparseFile(join(tree, 'ends-in-data.bin'), 40 * MiB, [[40 * MiB - 70_000, pattern(70_000, 4)]]);
      await writeFile(join(tree, 'plain.txt'), 'plain\n');
    });

    it('finds the data extents by 64 KiB blocks and writes the map GNU tar writes', async () => {
      const ext = await dataExtents(join(tree, 'ends-in-data.bin'), 40 * MiB);
      const first = Math.floor((40 * MiB - 70_000) / 65536) * 65536;
      expect(ext).toEqual([{ offset: first, length: 40 * MiB - first }]);
      expect(
        sparseMap(ext, 40 * MiB)
          .toString()
          .replace(/\0+$/, ''),
      ).toBe(`1\n${first}\n${40 * MiB - first}\n`);
      expect(
        sparseMap([{ offset: 0, length: 4096 }], 10 * MiB)
          .toString()
          .replace(/\0+$/, ''),
      ).toBe(`2\n0\n4096\n${10 * MiB}\n0\n`);
      expect(sparseMap([], 10 * MiB).length).toBe(512);
    });

    it('a 1.5 GiB file with 8 MiB of data makes a small archive that GNU tar extracts to the same bytes, sparse', async () => {
      const archive = join(dir, 'sparse.tar');
      await pipeline(createTarStream(tree, 'sparse'), createWriteStream(archive));
      const archived = (await stat(archive)).size;
      // The data, rounded to 64 KiB blocks, plus the small file and headers: far from 1.5 GiB.
      expect(archived).toBeGreaterThan(8 * MiB);
      expect(archived).toBeLessThan(8 * MiB + 70_000 + 1 * MiB);
      const out = join(dir, 'gnu-x');
      await mkdir(out);
      await run('tar', ['-x', '-f', archive, '-C', out]);
      const listing = await run('tar', ['-tv', '-f', archive]);
      expect(listing.stdout).toMatch(new RegExp(`${size}\\s+\\S+ \\S+ sparse/disk image\\.raw`));
      for (const name of ['disk image.raw', 'ends-in-data.bin', 'plain.txt']) {
        await run('cmp', [join(tree, name), join(out, 'sparse', name)]); // exits 1 on a difference
      }
      const st = await stat(join(out, 'sparse', 'disk image.raw'));
      expect(st.size).toBe(size);
      expect(st.blocks * 512).toBeLessThan(16 * MiB); // extracted sparse, not 1.5 GiB of zeros
      expect((st.mode & 0o777).toString(8)).toBe('640');
    }, 120_000);
  });
});
