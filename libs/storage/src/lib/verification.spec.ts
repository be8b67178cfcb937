import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { run } from '@sendense/process';
import { corruptDataByte, MiB, tempDir, writeImage } from '../../test/helpers';
import { hashFileRanges } from './parallel-hash';
import { CHECKSUM_PREFIX, LEGACY_CHECKSUM_PREFIX, SEGMENT_BYTES, digestLike, layerDigest, legacyLayerDigest, verifyImage } from './verification';

jest.setTimeout(60_000);

/**
 * The tree digest hashes 64 MiB segments on worker threads. These tests use
 * an image whose data crosses segment boundaries in runs of different
 * shapes, so the threaded and the single-thread paths split it the same way
 * only if the segmenting is right.
 */
describe('layer digest', () => {
  let dir: string;
  let image: string;
  const size = 3 * SEGMENT_BYTES;

  beforeAll(async () => {
    dir = await tempDir('digest');
    image = path.join(dir, 'a.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', image, String(size)]);
    await writeImage(image, [
      // One data run across the first segment boundary, a zero run, and a
      // run that ends exactly on the second boundary.
      { pattern: 0x21, off: SEGMENT_BYTES - 3 * MiB, len: 5 * MiB },
      { pattern: null, off: SEGMENT_BYTES + 4 * MiB, len: 2 * MiB },
      { pattern: 0x22, off: 2 * SEGMENT_BYTES - 1 * MiB, len: 1 * MiB },
      { pattern: 0x23, off: 2 * SEGMENT_BYTES + 64 * 1024, len: 64 * 1024 },
    ]);
  });

  afterAll(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('is the same on one thread and on worker threads, and changes with one byte', async () => {
    const inline = await layerDigest(image, 'rp', { threads: 1 });
    const threaded = await layerDigest(image, 'rp', { threads: 3 });
    expect(inline).toMatch(new RegExp(`^${CHECKSUM_PREFIX}[0-9a-f]{64}$`));
    expect(threaded).toBe(inline);

    const copy = path.join(dir, 'b.qcow2');
    await fsp.copyFile(image, copy);
    await corruptDataByte(copy, 2 * SEGMENT_BYTES + 64 * 1024 + 7);
    expect(await layerDigest(copy, 'rp', { threads: 2 })).not.toBe(inline);
  });

  it('verifies restore points that carry the legacy digest with the legacy algorithm', async () => {
    const legacy = await legacyLayerDigest(image, 'rp');
    // What the original one-thread implementation (before 2e21ddb) computed
    // for this image: sidecars written by it must keep verifying.
    expect(legacy).toBe(`${LEGACY_CHECKSUM_PREFIX}be1ff504929a996186c0cfaeee5296f07b93ffaa0851da535f7f57b9612af148`);
    expect(await digestLike(legacy, image, 'rp')).toBe(legacy);
    expect(await digestLike(null, image, 'rp')).toBe(await layerDigest(image, 'rp'));
    const v = await verifyImage(image, { id: 'rp', checksum: legacy, backingImageName: null, virtualSize: size });
    expect(v).toMatchObject({ checkClean: true, checksumMatches: true, problems: [] });
  });

  it('calls a file that ends before its mapped data truncated, on threads too', async () => {
    const file = path.join(dir, 'short.bin');
    await fsp.writeFile(file, Buffer.alloc(100, 1));
    await expect(hashFileRanges(file, [[[0, 50]], [[90, 20]]], { threads: 2 })).rejects.toThrow(/short read at file offset 100/);
    await expect(hashFileRanges(file, [[[0, 50]], [[90, 20]]], { threads: 1 })).rejects.toThrow(/short read at file offset 100/);
    const [a, b] = await hashFileRanges(
      file,
      [
        [[0, 50]],
        [
          [0, 25],
          [25, 25],
        ],
      ],
      { threads: 2 },
    );
    expect(a).toBe(b);
    expect(a).toBe(createHash('sha256').update(Buffer.alloc(50, 1)).digest('hex'));
  });
});
