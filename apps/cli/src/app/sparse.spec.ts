import { mkdtemp, mkdir, open, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createTarStream } from '@sendense/restore';
import { parsePax } from './sparse';
import { unpackTar } from './extract';

const MiB = 1024 * 1024;

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = (x >>> 24) | 1;
  }
  return b;
}

/**
 * The CLI's unpacker against the gateway's real archive (createTarStream):
 * node-tar alone would write a GNU sparse entry as its map plus data; the
 * unpacker writes it back as the original file, with its holes.
 */
describe('unpackTar: GNU sparse entries', () => {
  let dir: string;
  const size = 1536 * MiB;
  beforeAll(async () => {
    dir = await mkdtemp('/tmp/sendense-cli-sparse-');
    const tree = join(dir, 'tree');
    await mkdir(join(tree, 'sub dir'), { recursive: true });
    const fh = await open(join(tree, 'sub dir', 'disk é.raw'), 'w', 0o600);
    await fh.truncate(size);
    await fh.write(pattern(1 * MiB, 1), 0, 1 * MiB, 0);
    await fh.write(pattern(3 * MiB, 2), 0, 3 * MiB, 700 * MiB + 12345);
    await fh.write(pattern(4 * MiB, 3), 0, 4 * MiB, size - 5 * MiB);
    await fh.close();
    const ends = await open(join(tree, 'ends-in-data.bin'), 'w', 0o644);
    await ends.truncate(40 * MiB);
    await ends.write(pattern(70_000, 4), 0, 70_000, 40 * MiB - 70_000);
    await ends.close();
    await writeFile(join(tree, 'plain.txt'), 'plain\n');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('parses PAX records', () => {
    const rec = (kv: string) => {
      const len = Buffer.byteLength(kv) + 2;
      let n = len + 1;
      while (String(n).length + len !== n) n++;
      return `${n} ${kv}\n`;
    };
    const b = Buffer.from(rec('GNU.sparse.major=1') + rec('path=a b/é=c'));
    expect(parsePax(b)).toEqual({ 'GNU.sparse.major': '1', path: 'a b/é=c' });
  });

  it('unpacks the gateway archive of a 1.5 GiB sparse file to the same bytes, sparse, with its mode', async () => {
    const out = join(dir, 'out');
    await mkdir(out);
    let streamed = 0;
    const r = await unpackTar(Readable.from(createTarStream(join(dir, 'tree'), 'tree')), out, (n) => (streamed += n));
    expect(r.sparse_files).toBe(2);
    expect(r.warnings).toEqual([]);
    expect(streamed).toBeLessThan(10 * MiB);
    for (const name of ['sub dir/disk é.raw', 'ends-in-data.bin', 'plain.txt']) {
      const { run } = await import('@sendense/process');
      await run('cmp', [join(dir, 'tree', name), join(out, name)]); // exits 1 on a difference
    }
    const st = await stat(join(out, 'sub dir', 'disk é.raw'));
    expect(st.size).toBe(size);
    expect(st.blocks * 512).toBeLessThan(16 * MiB);
    expect((st.mode & 0o777).toString(8)).toBe('600');
    expect((await stat(join(out, 'ends-in-data.bin'))).size).toBe(40 * MiB);
    // No temporary left behind.
    expect((await readdir(join(out, 'sub dir'))).sort()).toEqual(['disk é.raw']);
    expect((await readdir(out)).sort()).toEqual(['ends-in-data.bin', 'plain.txt', 'sub dir']);
  }, 120_000);
});
