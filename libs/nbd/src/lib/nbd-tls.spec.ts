import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { NbdClient, listExports } from './nbd-client';
import { NbdError, NbdHandshakeError } from './nbd-errors';
import { copyExtents } from './extent-copier';
import { run } from '@sendense/process';
import { Server, TempDir, createImage, freePort, qemuIoWrite, qemuNbd } from '../../test/servers';

const MiB = 1024 * 1024;
jest.setTimeout(30000);

/** A TLS-PSK qemu-nbd as the nbd-exporter runs it: tls-creds-psk over a 0700 dir with keys.psk. */
describe('NbdClient over TLS-PSK (qemu-nbd tls-creds-psk)', () => {
  const dir = new TempDir();
  const key = randomBytes(32).toString('hex');
  const psk = { identity: 'sendense', key };
  let srv: Server;
  let port: number;
  const image = dir.file('disk.qcow2');

  beforeAll(async () => {
    await createImage(image, 'qcow2', 16 * MiB);
    await qemuIoWrite(image, 'qcow2', ['write -P 0x5a 1M 1M']);
    const pskDir = dir.file('psk');
    mkdirSync(pskDir, { mode: 0o700 });
    writeFileSync(`${pskDir}/keys.psk`, `sendense:${key}\n`, { mode: 0o600 });
    port = freePort();
    srv = await qemuNbd(dir, image, { format: 'qcow2', exportName: 'target', shared: 4, port, pskDir });
  });
  afterAll(async () => {
    await srv?.stop();
    dir.remove();
  });

  it('reads, writes and flushes with the key, over several connections', async () => {
    const client = await NbdClient.connect({ uri: `nbds://sendense@127.0.0.1:${port}/target`, tlsPsk: psk, connections: 2 });
    try {
      expect(client.size).toBe(16 * MiB);
      expect(client.connectionCount).toBe(2);
      // qemu-nbd 7.2 (GnuTLS) and Node agree on TLS 1.3 with the PSK.
      expect(client.tls).toEqual({ protocol: 'TLSv1.3', cipher: expect.stringMatching(/^TLS_/) });
      expect(client.server).toBe(`nbds://sendense@127.0.0.1:${port}/target`);
      expect((await client.read(MiB, 4096)).every((b) => b === 0x5a)).toBe(true);
      const payload = randomBytes(2 * MiB);
      await Promise.all(Array.from({ length: 32 }, (_, i) => client.write(4 * MiB + i * 65536, payload.subarray(i * 65536, (i + 1) * 65536))));
      await client.flush();
      const back = await Promise.all(Array.from({ length: 8 }, (_, i) => client.read(4 * MiB + i * 262144, 262144)));
      expect(Buffer.concat(back).equals(payload)).toBe(true);
      // The server's view agrees: what went through TLS reached the image.
      expect((await client.blockStatus(4 * MiB, 2 * MiB)).every((e) => e.flags === 0)).toBe(true);
    } finally {
      await client.close();
    }
    expect(await listExports({ uri: `nbds://127.0.0.1:${port}/`, tlsPsk: psk })).toEqual([expect.objectContaining({ name: 'target' })]);
  });

  it('copies extents into a TLS target (the Capture Agent path)', async () => {
    const src = dir.file('src.raw');
    await createImage(src, 'raw', 16 * MiB);
    await qemuIoWrite(src, 'raw', ['write -P 0x33 0 3M']);
    const srcSrv = await qemuNbd(dir, src, { format: 'raw', exportName: 'src', readOnly: true });
    try {
      const r = await copyExtents({ source: srcSrv.uri, target: { uri: `nbds://127.0.0.1:${port}/target`, tlsPsk: psk }, connections: 2 });
      expect(r.bytesWritten).toBe(3 * MiB);
    } finally {
      await srcSrv.stop();
    }
    const c = await NbdClient.connect({ host: '127.0.0.1', port, exportName: 'target', tlsPsk: psk });
    try {
      expect((await c.read(2 * MiB, MiB)).every((b) => b === 0x33)).toBe(true);
    } finally {
      await c.close();
    }
  });

  it('refuses a wrong key, no key, and plain NBD, without touching the image', async () => {
    const wrong = { identity: 'sendense', key: randomBytes(32).toString('hex') };
    const err = await NbdClient.connect({ uri: `nbds://127.0.0.1:${port}/target`, tlsPsk: wrong }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NbdError);
    expect((err as Error).message).toMatch(/TLS-PSK handshake failed/);
    await expect(NbdClient.connect(`nbds://127.0.0.1:${port}/target`)).rejects.toThrow(/no pre-shared key/);
    const plain = await NbdClient.connect(`nbd://127.0.0.1:${port}/target`).catch((e: unknown) => e);
    expect(plain).toBeInstanceOf(NbdHandshakeError);
    expect((plain as Error).message).toMatch(/TLS_REQD/);
    // libnbd as an outsider would use it: without the key file qemu-img cannot open the export.
    await expect(run('qemu-img', ['info', `nbd://127.0.0.1:${port}/target`], { timeoutMs: 10000 })).rejects.toThrow();
    // The server still serves the key holder afterwards.
    const ok = await NbdClient.connect({ uri: `nbds://127.0.0.1:${port}/target`, tlsPsk: psk });
    await ok.close();
  });

  it('refuses to go on in plain text when the server offers no TLS', async () => {
    const plainImage = dir.file('plain.raw');
    await createImage(plainImage, 'raw', MiB);
    const plainSrv = await qemuNbd(dir, plainImage, { format: 'raw', exportName: 'p' });
    try {
      await expect(NbdClient.connect({ uri: plainSrv.uri, tlsPsk: psk })).rejects.toThrow(/NBD_OPT_STARTTLS .*not going on in plain text/);
    } finally {
      await plainSrv.stop();
    }
  });

  it('checks the key is hex of at least 16 bytes', async () => {
    await expect(NbdClient.connect({ uri: `nbds://127.0.0.1:${port}/target`, tlsPsk: { identity: 'sendense', key: 'not-hex' } })).rejects.toThrow(
      /at least 16 bytes, in hex/,
    );
  });
});
