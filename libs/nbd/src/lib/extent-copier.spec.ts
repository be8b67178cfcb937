import { randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import * as net from 'node:net';
import { run } from '@sendense/process';
import { NbdClient } from './nbd-client';
import { CopyProgress, copyExtents } from './extent-copier';
import { Extent, allocatedExtents, dirtyExtents, normalizeExtents } from './extents';
import { NbdError } from './nbd-errors';
import { CONTEXT_BASE_ALLOCATION, dirtyBitmapContext } from './nbd-protocol';
import { Server, TempDir, createImage, nbdServer, nbdkit, qemuImgCompare, qemuIoWrite, qemuNbd, sha256 } from '../../test/servers';

const MiB = 1024 * 1024;
const KiB = 1024;
jest.setTimeout(60000);

/** Write random data into a raw file at the given extents only (the rest stays sparse). */
function fillRandom(file: string, extents: Extent[]): void {
  const fd = openSync(file, 'r+');
  try {
    for (const e of extents) writeSync(fd, randomBytes(e.length), 0, e.length, e.offset);
  } finally {
    closeSync(fd);
  }
}

/**
 * A TCP proxy in front of a Unix-socket server that cuts every connection
 * it carries once `cutAfter` bytes went from client to server, for the
 * first `cuts` connections: a dropped connection mid-copy, on demand.
 */
function droppingProxy(socketPath: string, cutAfter: number, cuts: number): Promise<{ port: number; close: () => void; drops: () => number }> {
  let dropped = 0;
  const server = net.createServer((client) => {
    const upstream = net.createConnection({ path: socketPath });
    let sent = 0;
    const willCut = dropped < cuts;
    client.on('data', (d: Buffer) => {
      sent += d.length;
      upstream.write(d);
      if (willCut && sent > cutAfter && !client.destroyed) {
        dropped++;
        client.destroy();
        upstream.destroy();
      }
    });
    upstream.on('data', (d: Buffer) => client.write(d));
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve({ port: (server.address() as net.AddressInfo).port, close: () => server.close(), drops: () => dropped })),
  );
}

describe('copyExtents', () => {
  const dir = new TempDir();
  const servers: Server[] = [];
  const start = async (s: Promise<Server>) => {
    const srv = await s;
    servers.push(srv);
    return srv;
  };
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    dir.remove();
  });

  it('copies a whole raw disk into a qcow2 target byte for byte, zeroes and holes included', async () => {
    const src = dir.file('whole.raw');
    await createImage(src, 'raw', 24 * MiB);
    fillRandom(src, [
      { offset: 0, length: 3 * MiB },
      { offset: 5 * MiB + 4 * KiB, length: 700 * KiB },
      { offset: 20 * MiB, length: 4 * MiB },
    ]);
    // An allocated all-zero region: must read back as zero, written as WRITE_ZEROES.
    await qemuIoWrite(src, 'raw', ['write -P 0 10M 2M']);
    const dst = dir.file('whole.qcow2');
    await createImage(dst, 'qcow2', 24 * MiB);
    const s = await start(qemuNbd(dir, src, { format: 'raw', readOnly: true, shared: 4 }));
    const t = await start(qemuNbd(dir, dst, { format: 'qcow2', shared: 4 }));
    const progress: CopyProgress[] = [];
    const result = await copyExtents({
      source: s.uri,
      target: t.uri,
      requestSize: 256 * KiB,
      queueDepth: 8,
      connections: 2,
      onProgress: (p) => progress.push(p),
      progressIntervalMs: 10,
    });
    expect(result.done).toBe(true);
    expect(result.bytesWritten + result.bytesZeroed).toBe(24 * MiB);
    expect(result.bytesZeroed).toBeGreaterThanOrEqual(2 * MiB);
    expect(result.extentsDone).toBe(1);
    expect(progress[progress.length - 1].done).toBe(true);
    expect(progress.every((p, i) => i === 0 || p.bytesWritten >= progress[i - 1].bytesWritten)).toBe(true);
    await qemuImgCompare(src, 'raw', dst, 'qcow2');
  });

  it('copies allocated extents from base:allocation only', async () => {
    const src = dir.file('alloc.raw');
    await createImage(src, 'raw', 16 * MiB);
    fillRandom(src, [
      { offset: 2 * MiB, length: MiB },
      { offset: 9 * MiB, length: 512 * KiB },
    ]);
    const dst = dir.file('alloc.qcow2');
    await createImage(dst, 'qcow2', 16 * MiB);
    const s = await start(qemuNbd(dir, src, { format: 'raw', readOnly: true }));
    const t = await start(qemuNbd(dir, dst, { format: 'qcow2' }));
    const source = await NbdClient.connect(s.uri);
    const extents = await allocatedExtents(source);
    const dataBytes = extents.filter((e) => !e.zero).reduce((n, e) => n + e.length, 0);
    expect(dataBytes).toBeLessThanOrEqual(2 * MiB); // qemu may report the first 4 KiB as data
    expect(dataBytes).toBeGreaterThanOrEqual(MiB + 512 * KiB);
    const withHoles = await allocatedExtents(source, { includeHoles: true });
    expect(withHoles.reduce((n, e) => n + e.length, 0)).toBe(16 * MiB);
    const r = await copyExtents({ source, target: { uri: t.uri }, extents });
    await source.close();
    // qemu reports the raw file's first 4 KiB as data; it reads as zero and is written as zero.
    expect(r.bytesWritten + r.bytesZeroed).toBe(extents.reduce((n, e) => n + e.length, 0));
    expect(r.bytesWritten).toBeGreaterThanOrEqual(MiB + 512 * KiB);
    await qemuImgCompare(src, 'raw', dst, 'qcow2');
    const map = await run('qemu-img', ['map', '-U', '--output=json', '-f', 'qcow2', dst]);
    const allocated = (JSON.parse(map.stdout) as { data: boolean; length: number }[]).filter((m) => m.data).reduce((n, m) => n + m.length, 0);
    expect(allocated).toBeLessThanOrEqual(2 * MiB + 64 * KiB);
  });

  it('writes CBT extents into a qcow2 overlay over a backing file; a now-zero extent reads as zero, not as backing data', async () => {
    // Backing (the previous restore point) holds old data everywhere.
    const backing = dir.file('base.qcow2');
    await createImage(backing, 'qcow2', 16 * MiB);
    await qemuIoWrite(backing, 'qcow2', ['write -P 0x77 0 16M']);
    // The source disk now: old data, with changed extents, one of them now all zero.
    const src = dir.file('now.raw');
    await createImage(src, 'raw', 16 * MiB);
    await qemuIoWrite(src, 'raw', ['write -P 0x77 0 16M']);
    const changed: Extent[] = [
      { offset: 64 * KiB, length: 4 * KiB },
      { offset: 1 * MiB, length: 1 * MiB + 12 * KiB },
      { offset: 5 * MiB, length: 768 * KiB }, // becomes all zero
      { offset: 9 * MiB + 4 * KiB, length: 300 * KiB },
      { offset: 16 * MiB - 64 * KiB, length: 64 * KiB },
    ];
    fillRandom(
      src,
      changed.filter((_, i) => i !== 2),
    );
    await qemuIoWrite(src, 'raw', ['write -z 5M 768k']);
    const overlay = dir.file('incr.qcow2');
    await createImage(overlay, 'qcow2', 16 * MiB, { file: backing, format: 'qcow2' });
    const s = await start(qemuNbd(dir, src, { format: 'raw', readOnly: true }));
    const t = await start(qemuNbd(dir, overlay, { format: 'qcow2' }));
    const r = await copyExtents({ source: s.uri, target: t.uri, extents: changed, requestSize: 64 * KiB });
    expect(r.extentsDone).toBe(changed.length);
    expect(r.bytesZeroed).toBe(768 * KiB);
    await t.stop();
    await qemuImgCompare(src, 'raw', overlay, 'qcow2');
    // Only the changed extents live in the overlay; everything else falls through.
    const map = JSON.parse((await run('qemu-img', ['map', '-U', '--output=json', '-f', 'qcow2', overlay])).stdout) as {
      depth: number;
      start: number;
      length: number;
    }[];
    const inOverlay = map.filter((m) => m.depth === 0).reduce((n, m) => n + m.length, 0);
    expect(inOverlay).toBeLessThan(4 * MiB);
  });

  it('copies the dirty extents of a qemu bitmap (qemu-nbd -B) into a raw nbd-server export', async () => {
    const img = dir.file('cbt.qcow2');
    await createImage(img, 'qcow2', 8 * MiB);
    await qemuIoWrite(img, 'qcow2', ['write -P 0x11 0 8M']);
    await run('qemu-img', ['bitmap', '--add', img, 'cbt-1']);
    await qemuIoWrite(img, 'qcow2', ['write -P 0x22 1M 128k', 'write -P 0x33 6M 64k']);
    const s = await start(qemuNbd(dir, img, { format: 'qcow2', readOnly: true, bitmaps: ['cbt-1'] }));
    const source = await NbdClient.connect({ uri: s.uri, metaContexts: [dirtyBitmapContext('cbt-1')] });
    const dirty = await dirtyExtents(source, 'cbt-1');
    expect(dirty).toEqual([
      { offset: MiB, length: 128 * KiB },
      { offset: 6 * MiB, length: 64 * KiB },
    ]);
    // A target holding the previous state: only the dirty extents change it.
    const raw = dir.file('prev.raw');
    await createImage(raw, 'raw', 8 * MiB);
    await qemuIoWrite(raw, 'raw', ['write -P 0x11 0 8M']);
    const t = await start(nbdServer(dir, raw, 'prev'));
    await copyExtents({ source, target: t.uri, extents: dirty });
    await source.close();
    await qemuImgCompare(img, 'qcow2', raw, 'raw');
  });

  it('copies through nbdkit (memory target) and checks by checksum', async () => {
    const src = dir.file('kit.raw');
    await createImage(src, 'raw', 8 * MiB);
    fillRandom(src, [{ offset: 0, length: 8 * MiB }]);
    const s = await start(nbdkit(dir, 'file', [src]));
    const t = await start(nbdkit(dir, 'memory', ['size=8M']));
    await copyExtents({ source: s.uri, target: t.uri, requestSize: 128 * KiB });
    const back = dir.file('kit.back');
    await run('nbdcopy', [t.uri, back]);
    expect(await sha256(back)).toBe(await sha256(src));
  });

  it('resumes after dropped connections, within the retry budget', async () => {
    const src = dir.file('drop.raw');
    await createImage(src, 'raw', 16 * MiB);
    fillRandom(src, [{ offset: 0, length: 16 * MiB }]);
    const dst = dir.file('drop.qcow2');
    await createImage(dst, 'qcow2', 16 * MiB);
    const s = await start(qemuNbd(dir, src, { format: 'raw', readOnly: true }));
    const t = await start(qemuNbd(dir, dst, { format: 'qcow2' }));
    // The target connection is cut twice after ~3 MiB of requests.
    const proxy = await droppingProxy(t.socket!, 3 * MiB, 2);
    try {
      const r = await copyExtents({
        source: s.uri,
        target: `nbd://127.0.0.1:${proxy.port}/disk`,
        requestSize: 256 * KiB,
        queueDepth: 4,
        retry: { attempts: 5, delayMs: 10 },
      });
      expect(proxy.drops()).toBe(2);
      expect(r.retries).toBe(2);
      expect(r.bytesWritten).toBe(16 * MiB);
    } finally {
      proxy.close();
    }
    await qemuImgCompare(src, 'raw', dst, 'qcow2');
  });

  it('fails clearly when the connection keeps dropping', async () => {
    const src = dir.file('drop2.raw');
    await createImage(src, 'raw', 8 * MiB);
    const s = await start(qemuNbd(dir, src, { format: 'raw', readOnly: true }));
    const t = await start(nbdkit(dir, 'memory', ['size=8M']));
    const proxy = await droppingProxy(t.socket!, 256 * KiB, 1000);
    try {
      const err = await copyExtents({
        source: s.uri,
        target: `nbd://127.0.0.1:${proxy.port}/`,
        extents: [{ offset: 0, length: 8 * MiB }],
        detectZeroes: false,
        retry: { attempts: 2, delayMs: 5 },
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NbdError);
      expect((err as Error).message).toMatch(/copy failed after 2 reconnect attempt\(s\).*server .*127\.0\.0\.1/);
    } finally {
      proxy.close();
    }
  });

  it('treats ESHUTDOWN as retryable but bounded', async () => {
    const s = await start(nbdkit(dir, 'memory', ['size=1M']));
    const t = await start(nbdkit(dir, 'memory', ['size=1M'], ['error'], ['error-pwrite=ESHUTDOWN', 'error-pwrite-rate=100%']));
    const err = await copyExtents({
      source: s.uri,
      target: t.uri,
      detectZeroes: false,
      retry: { attempts: 2, delayMs: 5 },
    }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/copy failed after 2 reconnect attempt\(s\).*ESHUTDOWN/);
  });

  it('reports an NBD error from the source with server, export and offset (no retry)', async () => {
    const s = await start(nbdkit(dir, 'memory', ['size=4M'], ['error'], ['error-pread=EIO', 'error-pread-rate=100%']));
    const t = await start(nbdkit(dir, 'memory', ['size=4M']));
    const err = await copyExtents({ source: s.uri, target: t.uri, extents: [{ offset: MiB, length: 64 * KiB }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NbdError);
    expect((err as Error).message).toMatch(/NBD READ failed: EIO.*server nbd\+unix.*export "", offset 1048576/);
  });

  it('can be cancelled with an AbortSignal', async () => {
    const s = await start(nbdkit(dir, 'memory', ['size=64M'], ['delay'], ['rdelay=50ms']));
    const t = await start(nbdkit(dir, 'memory', ['size=64M']));
    const ac = new AbortController();
    const seen: CopyProgress[] = [];
    setTimeout(() => ac.abort(), 300);
    const err = await copyExtents({
      source: s.uri,
      target: t.uri,
      signal: ac.signal,
      detectZeroes: false,
      queueDepth: 2,
      connections: 1,
      onProgress: (p) => seen.push(p),
      progressIntervalMs: 50,
    }).catch((e: unknown) => e);
    expect((err as Error).name).toBe('AbortError');
    expect(seen.length).toBeGreaterThan(2);
    expect(seen[seen.length - 1].done).toBe(false);
  });

  it('refuses extents beyond the disk and read-only targets', async () => {
    const src = dir.file('small.raw');
    await createImage(src, 'raw', MiB);
    const s = await start(qemuNbd(dir, src, { format: 'raw', readOnly: true }));
    const ro = await start(qemuNbd(dir, src, { format: 'raw', readOnly: true }));
    await expect(copyExtents({ source: s.uri, target: ro.uri })).rejects.toThrow(/read-only/);
    const t = await start(nbdkit(dir, 'memory', ['size=1M']));
    await expect(copyExtents({ source: s.uri, target: t.uri, extents: [{ offset: MiB - 4096, length: 8192 }] })).rejects.toThrow(/beyond the disk size/);
  });
});

describe('normalizeExtents', () => {
  it('sorts, merges touching and overlapping extents, and keeps zero only where all parts are zero', () => {
    expect(
      normalizeExtents(
        [
          { offset: 8192, length: 4096 },
          { offset: 0, length: 4096 },
          { offset: 4096, length: 4096 },
          { offset: 20000, length: 100, zero: true },
          { offset: 20050, length: 100 },
          { offset: 30000, length: 0 },
          { offset: 40000, length: 10, zero: true },
          { offset: 40010, length: 10, zero: true },
        ],
        1 << 20,
      ),
    ).toEqual([
      { offset: 0, length: 12288, zero: false },
      { offset: 20000, length: 150, zero: false },
      { offset: 40000, length: 20, zero: true },
    ]);
    expect(() => normalizeExtents([{ offset: -1, length: 1 }], 10)).toThrow(/invalid extent/);
  });

  it('allocatedExtents needs no pre-negotiated context', async () => {
    expect(CONTEXT_BASE_ALLOCATION).toBe('base:allocation');
  });
});
