import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { NbdClient, listExports } from './nbd-client';
import { NbdCommandError, NbdConnectionError, NbdError, NbdHandshakeError, isRetryable } from './nbd-errors';
import { CONTEXT_BASE_ALLOCATION, NBD_STATE_HOLE, NBD_STATE_ZERO } from './nbd-protocol';
import { Server, TempDir, createImage, freePort, nbdServer, nbdkit, qemuIoWrite, qemuNbd } from '../../test/servers';

const MiB = 1024 * 1024;
jest.setTimeout(30000);

describe('NbdClient against qemu-nbd (raw)', () => {
  const dir = new TempDir();
  let srv: Server;
  let client: NbdClient;
  const image = dir.file('disk.raw');

  beforeAll(async () => {
    await createImage(image, 'raw', 16 * MiB);
    await qemuIoWrite(image, 'raw', ['write -P 0xab 1M 1M']);
    srv = await qemuNbd(dir, image, { format: 'raw', exportName: 'disk', shared: 4 });
    client = await NbdClient.connect({ uri: srv.uri, metaContexts: [CONTEXT_BASE_ALLOCATION], connections: 2 });
  });
  afterAll(async () => {
    await client?.close();
    await srv?.stop();
    dir.remove();
  });

  it('negotiates size, flags, block sizes and meta contexts', () => {
    expect(client.size).toBe(16 * MiB);
    expect(client.readOnly).toBe(false);
    expect(client.canFlush).toBe(true);
    expect(client.canWriteZeroes).toBe(true);
    expect(client.canTrim).toBe(true);
    expect(client.canMultiConn).toBe(true);
    expect(client.connectionCount).toBe(2);
    expect(client.info.structuredReplies).toBe(true);
    expect(client.info.maxBlock).toBeGreaterThanOrEqual(MiB);
    expect(client.metaContexts.has(CONTEXT_BASE_ALLOCATION)).toBe(true);
  });

  it('reads data written by qemu-io and holes as zeroes', async () => {
    const data = await client.read(MiB - 4096, 8192);
    expect(data.subarray(0, 4096).every((b) => b === 0)).toBe(true);
    expect(data.subarray(4096).every((b) => b === 0xab)).toBe(true);
    const hole = await client.readReply(8 * MiB, MiB);
    expect(hole.zero).toBe(true);
  });

  it('writes, reads back with many requests in flight, and flushes', async () => {
    const payload = randomBytes(4 * MiB);
    const writes: Promise<void>[] = [];
    for (let at = 0; at < payload.length; at += 64 * 1024) {
      writes.push(client.write(10 * MiB + at, payload.subarray(at, at + 64 * 1024)));
    }
    await Promise.all(writes);
    await client.flush();
    const reads = await Promise.all(Array.from({ length: 64 }, (_, i) => client.read(10 * MiB + i * 64 * 1024, 64 * 1024)));
    expect(Buffer.concat(reads).equals(payload)).toBe(true);
    const onDisk = readFileSync(image).subarray(10 * MiB, 14 * MiB);
    expect(onDisk.equals(payload)).toBe(true);
  });

  it('writes zeroes (with and without NO_HOLE) and trims', async () => {
    await client.write(3 * MiB, Buffer.alloc(MiB, 7));
    await client.writeZeroes(3 * MiB, 512 * 1024, { noHole: true });
    await client.writeZeroes(3 * MiB + 512 * 1024, 256 * 1024, { fua: true });
    await client.trim(3 * MiB + 768 * 1024, 256 * 1024);
    const back = await client.read(3 * MiB, 768 * 1024);
    expect(back.every((b) => b === 0)).toBe(true);
  });

  it('reports block status, looping over partial replies', async () => {
    const extents = await client.blockStatus(0, client.size);
    // qemu's raw driver reports the first 4 KiB as data (alignment probing).
    expect(extents).toContainEqual({ offset: 4096, length: MiB - 4096, flags: NBD_STATE_HOLE | NBD_STATE_ZERO });
    expect(extents).toContainEqual({ offset: MiB, length: MiB, flags: 0 });
    const sum = extents.reduce((n, e) => n + e.length, 0);
    expect(sum).toBe(client.size);
    const one = await client.blockStatusOnce(0, client.size, true);
    expect([...one.values()][0]).toHaveLength(1);
  });

  it('rejects bad requests with the server, export and offset in the message', async () => {
    await expect(client.read(client.size - 10, 20)).rejects.toThrow(/beyond the export size.*export "disk", offset \d+/);
    await expect(client.read(0, 64 * MiB)).rejects.toThrow(NbdError);
    await expect(client.blockStatus(0, 10, 'qemu:dirty-bitmap:nope')).rejects.toThrow(/not negotiated/);
  });

  it('lists exports', async () => {
    const list = await listExports(srv.uri);
    expect(list.map((e) => e.name)).toEqual(['disk']);
  });

  it('fails clearly on an unknown export', async () => {
    const uri = srv.uri.replace('/disk?', '/nope?');
    await expect(NbdClient.connect(uri)).rejects.toThrow(NbdHandshakeError);
    await expect(NbdClient.connect(uri)).rejects.toThrow(/export "nope"/);
  });
});

describe('NbdClient against qemu-nbd (qcow2 over TCP, read-only)', () => {
  const dir = new TempDir();
  afterAll(() => dir.remove());

  it('serves a qcow2 read-only on a port and refuses writes', async () => {
    const image = dir.file('disk.qcow2');
    await createImage(image, 'qcow2', 8 * MiB);
    await qemuIoWrite(image, 'qcow2', ['write -P 0x5a 0 64k']);
    const srv = await qemuNbd(dir, image, { format: 'qcow2', readOnly: true, port: freePort() });
    try {
      const c = await NbdClient.connect(srv.uri);
      expect(c.readOnly).toBe(true);
      expect((await c.read(0, 65536)).every((b) => b === 0x5a)).toBe(true);
      await expect(c.write(0, Buffer.alloc(512))).rejects.toThrow(/read-only/);
      await c.close();
    } finally {
      await srv.stop();
    }
  });
});

describe('NbdClient against nbdkit', () => {
  const dir = new TempDir();
  afterAll(() => dir.remove());

  it('memory plugin: structured replies with holes, and simple replies when asked', async () => {
    const srv = await nbdkit(dir, 'memory', ['size=8M']);
    try {
      const c = await NbdClient.connect(srv.uri);
      await c.write(4096, Buffer.alloc(4096, 1));
      const r = await c.readReply(0, 3 * 4096);
      expect(r.zero).toBe(false);
      expect(r.data.subarray(4096, 8192).every((b) => b === 1)).toBe(true);
      await c.close();
      const simple = await NbdClient.connect({ uri: srv.uri, structuredReplies: false });
      expect(simple.info.structuredReplies).toBe(false);
      expect((await simple.read(4096, 4096)).every((b) => b === 1)).toBe(true);
      expect((await simple.read(0, 4096)).every((b) => b === 0)).toBe(true);
      await simple.close();
    } finally {
      await srv.stop();
    }
  });

  it('error filter: EIO on read names command, offset and error', async () => {
    const srv = await nbdkit(dir, 'memory', ['size=8M'], ['error'], ['error-pread=EIO', 'error-pread-rate=100%']);
    try {
      const c = await NbdClient.connect(srv.uri);
      const err = await c.read(65536, 4096).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NbdCommandError);
      expect((err as NbdCommandError).errnoName).toBe('EIO');
      expect((err as Error).message).toMatch(/NBD READ failed: EIO.*offset 65536/);
      // The connection survives a command error.
      await c.write(0, Buffer.alloc(512, 3));
      await c.close();
    } finally {
      await srv.stop();
    }
  });

  it('file plugin: reads a file', async () => {
    const f = dir.file('plain.img');
    await createImage(f, 'raw', 4 * MiB);
    await qemuIoWrite(f, 'raw', ['write -P 0x11 2M 4k']);
    const srv = await nbdkit(dir, 'file', [f]);
    try {
      const c = await NbdClient.connect({ uri: srv.uri, metaContexts: [CONTEXT_BASE_ALLOCATION] });
      expect((await c.read(2 * MiB, 4096)).every((b) => b === 0x11)).toBe(true);
      const ext = await c.blockStatus(0, c.size);
      expect(ext.some((e) => e.flags === 0)).toBe(true);
      await c.close();
    } finally {
      await srv.stop();
    }
  });

  it('a server stopping answers ESHUTDOWN, which counts as retryable', async () => {
    const srv = await nbdkit(dir, 'memory', ['size=8M'], ['delay'], ['rdelay=2']);
    const c = await NbdClient.connect(srv.uri);
    const pending = c.read(0, 4096).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 200));
    await srv.stop();
    const err = await pending;
    expect(err).toBeInstanceOf(NbdError);
    expect(isRetryable(err)).toBe(true);
    await c.close();
  });

  it('a server that is killed fails requests in flight with NbdConnectionError', async () => {
    const srv = await nbdkit(dir, 'memory', ['size=8M'], ['delay'], ['rdelay=2']);
    const c = await NbdClient.connect(srv.uri);
    const pending = c.read(0, 4096);
    await new Promise((r) => setTimeout(r, 200));
    srv.daemon.child.kill('SIGKILL');
    await expect(pending).rejects.toThrow(NbdConnectionError);
    expect(c.healthy).toBe(false);
    await expect(c.read(0, 4096)).rejects.toThrow(NbdConnectionError);
    await c.close();
  });
});

describe('NbdClient against nbd-server', () => {
  const dir = new TempDir();
  afterAll(() => dir.remove());

  it('reads and writes a raw file and lists exports', async () => {
    const f = dir.file('export.raw');
    await createImage(f, 'raw', 4 * MiB);
    const srv = await nbdServer(dir, f, 'raw');
    try {
      const list = await listExports(srv.uri);
      expect(list.map((e) => e.name)).toContain('raw');
      const c = await NbdClient.connect(srv.uri);
      const data = randomBytes(128 * 1024);
      await c.write(MiB, data);
      await c.writeZeroes(0, 4096);
      await c.flush();
      expect((await c.read(MiB, data.length)).equals(data)).toBe(true);
      await c.close();
      expect(
        readFileSync(f)
          .subarray(MiB, MiB + data.length)
          .equals(data),
      ).toBe(true);
    } finally {
      await srv.stop();
    }
  });
});
