import { chmod, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '@sendense/process';
import { makeTestEnv, nbdSize, qcow2, rawFile, type TestEnv } from '../../testing/test-env';
import { MemoryExportRecordStore } from '../store/memory-export-record-store';
import { NbdExportManager } from './export-manager';

/**
 * Transport unix: a backup target for a Capture Agent on the same host, on a
 * socket in the state dir instead of a TCP port; the file system decides who
 * may connect (0700 dir, or 0710 + a 0660 socket of NBD_SOCKET_GROUP).
 */
jest.setTimeout(60_000);

let env: TestEnv;
beforeAll(async () => {
  env = await makeTestEnv(4);
});
afterAll(() => env.cleanup());

const MiB = 1024 * 1024;
const mode = async (p: string) => (await stat(p)).mode & 0o777;

/** nbdinfo --size as another user (nobody) in group `gid` only: null when refused. */
async function sizeAs(gid: number, uri: string): Promise<number | null> {
  try {
    const r = await run('setpriv', ['--reuid=65534', `--regid=${gid}`, '--clear-groups', 'nbdinfo', '--size', uri], { timeoutMs: 10_000 });
    return Number(r.stdout.trim());
  } catch {
    return null;
  }
}

it('serves a writable QCOW2 on a Unix socket only the exporter user may open, and removes the socket with the export', async () => {
  const manager = new NbdExportManager(env.config, new MemoryExportRecordStore());
  await manager.start();
  try {
    const image = await qcow2(join(env.root, 'unix.qcow2'), '8M');
    const exp = await manager.create({ vmContextId: 'ctx-unix', diskId: 0, type: 'full', kind: 'qcow2', filePath: image, writable: true, transport: 'unix' });
    expect(exp.port).toBeNull();
    expect(exp.tls).toBe(false);
    expect(exp.socketPath).toMatch(new RegExp(`^${join(env.stateDir, 'sockets')}/[0-9a-f]{20}\\.sock$`));
    expect(exp.uri).toBe(`nbd+unix:///${exp.name}?socket=${exp.socketPath}`);
    expect(await nbdSize(exp.uri)).toBe(8 * MiB);
    expect(await mode(join(env.stateDir, 'sockets'))).toBe(0o700);

    // Data written through the socket lands in the image.
    const data = join(env.dir, 'one-mib.raw');
    await writeFile(data, Buffer.alloc(MiB, 0xa5));
    await run('nbdcopy', ['--flush', data, exp.uri]);
    await manager.remove(exp.name);
    await expect(stat(exp.socketPath as string)).rejects.toThrow(/ENOENT/);
    const read = await run('qemu-io', ['-f', 'qcow2', '-r', '-c', `read -P 0xa5 0 ${MiB}`, image]);
    expect(read.stdout).not.toMatch(/Pattern verification failed/);
    const map = (await run('qemu-img', ['map', '--output=json', image])).stdout;
    expect(JSON.parse(map)[0]).toMatchObject({ start: 0, length: MiB, data: true });
  } finally {
    await manager.shutdown();
  }
});

it('lets NBD_SOCKET_GROUP in (0710 dir, 0660 socket) and nobody else', async () => {
  // The test env's temp dirs are 0700: open the way down to the sockets dir for "nobody".
  await chmod(env.dir, 0o711);
  await chmod(env.stateDir, 0o711);
  const manager = new NbdExportManager({ ...env.config, socketGroup: 'nogroup' }, new MemoryExportRecordStore());
  await manager.start();
  try {
    const image = await qcow2(join(env.root, 'group.qcow2'), '4M');
    const exp = await manager.create({ vmContextId: 'ctx-group', diskId: 0, type: 'full', kind: 'qcow2', filePath: image, writable: true, transport: 'unix' });
    const sockets = await stat(join(env.stateDir, 'sockets'));
    expect([sockets.mode & 0o777, sockets.gid]).toEqual([0o710, 65534]);
    const sock = await stat(exp.socketPath as string);
    expect([sock.mode & 0o777, sock.gid]).toEqual([0o660, 65534]);
    expect(await sizeAs(65534, exp.uri)).toBe(4 * MiB);
    // Another group (daemon, gid 1) cannot even reach the socket.
    expect(await sizeAs(1, exp.uri)).toBeNull();
  } finally {
    await manager.shutdown();
  }
});

it('refuses what a Unix socket cannot serve, saying what to ask for', async () => {
  const manager = new NbdExportManager(env.config, new MemoryExportRecordStore());
  await manager.start();
  try {
    const image = await qcow2(join(env.root, 'refused.qcow2'), '4M');
    const raw = await rawFile(join(env.root, 'refused.raw'), '4M');
    const base = { vmContextId: 'ctx-ref', diskId: 0, type: 'full', transport: 'unix' as const };
    await expect(manager.create({ ...base, kind: 'qcow2', filePath: image, writable: true, tls: 'psk' })).rejects.toThrow(
      /takes no TLS.*tls none or transport tcp/,
    );
    await expect(manager.create({ ...base, kind: 'raw', filePath: raw })).rejects.toThrow(/only for kind qcow2/);
    await expect(manager.create({ ...base, kind: 'qcow2', filePath: image, restorePointId: 'rp-1', idleTimeoutSeconds: 60 })).rejects.toThrow(
      /idle timeout needs transport tcp/,
    );
    await expect(manager.create({ ...base, kind: 'qcow2', filePath: image, transport: 'udp' as never })).rejects.toThrow(
      /transport "udp" is not one of tcp, unix/,
    );
    expect(await manager.list()).toEqual([]);
  } finally {
    await manager.shutdown();
  }
});

it('removes socket files no export owns at start', async () => {
  const manager = new NbdExportManager(env.config, new MemoryExportRecordStore());
  await manager.start();
  const stray = join(env.stateDir, 'sockets', '0123456789abcdef0123.sock');
  await writeFile(stray, '');
  const report = await manager.reconcile();
  expect(report.removedConfigs).toContain(stray);
  await expect(stat(stray)).rejects.toThrow(/ENOENT/);
  await manager.shutdown();
});
