import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { access, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { CommandError, findProcesses, run, waitFor } from '@sendense/process';
import { makeTestEnv, nbdSize, qcow2, rawFile, type TestEnv } from '../../testing/test-env';
import { ExporterError } from '../exporter-error';
import { MemoryExportRecordStore } from '../store/memory-export-record-store';
import { NbdExportManager, PSK_IDENTITY } from './export-manager';

/**
 * Instant access: exports of a restore point's whole chain, read-only or
 * through a temporary overlay, against real qemu-nbd, qemu-img and nbdcopy.
 */
jest.setTimeout(90_000);

let env: TestEnv;
let manager: NbdExportManager;
let full: string;
let incr: string;
let guest: string;
let seq = 0;
const ts = () => `20260301T${String(100000 + seq++).padStart(6, '0')}`;
const MiB = 1024 * 1024;

async function sha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

beforeAll(async () => {
  env = await makeTestEnv(40);
  manager = new NbdExportManager(env.config, new MemoryExportRecordStore());
  await manager.start();
  // The guest's disk as raw bytes, and a two-point chain holding it: the full has
  // the first state, the incremental the changes (including a zeroed range).
  guest = await rawFile(join(env.dir, 'guest.raw'), '32M');
  await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x11 0 4M', '-c', 'write -P 0x22 20M 2M', guest]);
  full = await qcow2(join(env.root, 'full-20260301T000000.qcow2'), '32M');
  await run('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'qcow2', guest, full]);
  await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x33 1M 1M', '-c', 'write -z 20M 1M', '-c', 'write -P 0x44 31M 1M', guest]);
  incr = await qcow2(join(env.root, 'incr-20260301T010000.qcow2'), '32M', full);
  await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x33 1M 1M', '-c', 'write -z 20M 1M', '-c', 'write -P 0x44 31M 1M', incr]);
});

afterAll(async () => {
  await manager?.shutdown();
  expect(await findProcesses(`${env.stateDir}/`)).toEqual([]);
  await env.cleanup();
});

const restore = (over: Record<string, unknown> = {}) => ({
  vmContextId: 'ctx-ia',
  diskId: 0,
  type: 'restore',
  timestamp: ts(),
  kind: 'qcow2' as const,
  filePath: incr,
  restorePointId: 'rp-incr',
  ...over,
});

it('a read-only export of an incremental serves the whole chain: nbdcopy and qemu-img compare read the guest data', async () => {
  const exp = await manager.create(restore());
  expect(exp).toMatchObject({ writable: false, restorePointId: 'rp-incr', overlayPath: null, virtualSize: 32 * MiB, tls: false });
  const copy = join(env.dir, 'copy.raw');
  await run('nbdcopy', [exp.uri, copy]);
  await run('cmp', [guest, copy]);
  await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', guest, exp.uri]);
  // Writes are refused.
  await expect(run('qemu-io', ['-f', 'raw', '-c', 'write 0 64k', exp.uri])).rejects.toThrow(CommandError);
  // A second read-only export of the same point is fine; both are listed by restore point.
  const second = await manager.create(restore());
  expect((await manager.list({ restorePointId: 'rp-incr' })).map((e) => e.name).sort()).toEqual([exp.name, second.name].sort());
  expect(await manager.list({ restoreOnly: true })).toHaveLength(2);
  await manager.remove(exp.name);
  await manager.remove(second.name);
});

it('a writable export writes a temporary overlay: every file of the chain is unchanged, the overlay goes with the export', async () => {
  const before = [await sha256(full), await sha256(incr)];
  const exp = await manager.create(restore({ overlay: true }));
  expect(exp.overlayPath).toBe(join(env.stateDir, 'overlays', `${exp.name}.qcow2`));
  expect(exp.filePath).toBe(incr);
  // The client sees the restore point, writes over it and reads its writes back.
  await run('qemu-io', ['-f', 'raw', '-c', 'read -P 0x33 1M 1M', '-c', 'write -P 0xee 0 8M', '-c', 'write -z 30M 2M', '-c', 'read -P 0xee 0 8M', exp.uri]);
  await run('qemu-io', ['-f', 'raw', '-c', 'read -P 0xee 4M 1M', '-c', 'read -P 0 31M 1M', exp.uri]);
  // The overlay's backing file is the restore point, named absolutely.
  const info = JSON.parse((await run('qemu-img', ['info', '-U', '--output=json', exp.overlayPath as string])).stdout) as { 'backing-filename': string };
  expect(info['backing-filename']).toBe(incr);
  // Two overlay exports of one point do not conflict (each writes its own).
  const other = await manager.create(restore({ overlay: true }));
  await run('qemu-io', ['-f', 'raw', '-c', 'read -P 0x11 0 1M', other.uri]);
  await manager.remove(other.name);

  await manager.remove(exp.name);
  expect(await exists(exp.overlayPath as string)).toBe(false);
  expect([await sha256(full), await sha256(incr)]).toEqual(before);
  await run('qemu-img', ['check', '-q', incr]);
  await run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', guest, incr]);
});

it('refuses instant-access requests that would write the chain or are malformed', async () => {
  const refuse = async (over: Record<string, unknown>, message: RegExp) => {
    const err = await manager.create(restore(over) as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExporterError);
    expect((err as ExporterError).code).toBe('INVALID_ARGUMENT');
    expect((err as ExporterError).message).toMatch(message);
  };
  await refuse({ writable: true }, /never the restore point/);
  await refuse({ overlay: true, writable: true }, /exclude each other/);
  await refuse({ overlay: true, restorePointId: undefined }, /overlay needs restorePointId/);
  await refuse({ idleTimeoutSeconds: 0 }, /idleTimeoutSeconds/);
  await refuse({ idleTimeoutSeconds: 1.5 }, /idleTimeoutSeconds/);
  await refuse({ restorePointId: 'a b' }, /restorePointId/);
  await refuse({ kind: 'raw' }, /QCOW2/);
  expect(await findProcesses(`${env.stateDir}/`)).toEqual([]);
});

it('expires an export with no client after its idle timeout, and not while a client is connected', async () => {
  const exp = await manager.create(restore({ overlay: true, idleTimeoutSeconds: 5 }));
  expect(exp.idleTimeoutSeconds).toBe(5);
  expect(Date.parse(exp.expiresAt as string) - Date.parse(exp.lastActiveAt)).toBe(5000);
  const t0 = Date.parse(exp.lastActiveAt);
  // A client holds a connection open.
  const socket = connect(exp.port as number, '127.0.0.1');
  await new Promise<void>((r) => socket.once('connect', () => r()));
  await waitFor(async () => (await manager.sweepIdle(new Date(t0 + 2000))).length === 0 && (await manager.get(exp.name))?.lastActiveAt !== exp.lastActiveAt, {
    timeoutMs: 5000,
    message: 'the connected client to count as activity',
  });
  expect(await manager.sweepIdle(new Date(t0 + 60_000))).toEqual([]);
  expect(await manager.get(exp.name)).not.toBeNull();
  socket.destroy();
  await waitFor(async () => (await manager.sweepIdle(new Date(t0 + 3_600_000))).includes(exp.name), {
    timeoutMs: 5000,
    message: 'the idle export to be removed',
  });
  expect(await manager.get(exp.name)).toBeNull();
  expect(await exists(exp.overlayPath as string)).toBe(false);
  expect(await nbdSize(exp.uri)).toBeNull();
});

it('a TLS-PSK export takes only clients holding its key', async () => {
  const exp = await manager.create(restore({ tls: 'psk' }));
  expect(exp).toMatchObject({ tls: true, tlsMode: 'psk', tlsPsk: { identity: PSK_IDENTITY } });
  expect(exp.tlsPsk?.key).toMatch(/^[0-9a-f]{64}$/);
  expect(exp.uri).toMatch(new RegExp(`^nbds://${PSK_IDENTITY}@127\\.0\\.0\\.1:\\d+/`));
  const keyFile = join(env.dir, 'client.psk');
  await writeFile(keyFile, `${PSK_IDENTITY}:${exp.tlsPsk?.key}\n`, { mode: 0o600 });
  expect(await nbdSize(`${exp.uri}?tls-psk-file=${keyFile}`)).toBe(32 * MiB);
  // Plain NBD, and TLS with another key, are refused.
  expect(await nbdSize(exp.uri.replace(/^nbds:\/\/[^@]+@/, 'nbd://'))).toBeNull();
  const wrong = join(env.dir, 'wrong.psk');
  await writeFile(wrong, `${PSK_IDENTITY}:${'ab'.repeat(32)}\n`, { mode: 0o600 });
  expect(await nbdSize(`${exp.uri}?tls-psk-file=${wrong}`)).toBeNull();
  // The key is not repeated in listings.
  expect((await manager.get(exp.name))?.tlsPsk).toBeUndefined();
  await manager.remove(exp.name);
  expect(await exists(join(env.stateDir, 'psk', exp.name))).toBe(false);
});

it('reconcile drops overlays and keys of exports that did not survive', async () => {
  const exp = await manager.create(restore({ overlay: true, tls: 'psk' }));
  // A second manager over an empty record store sees the server and files as strays.
  const fresh = new NbdExportManager(env.config, new MemoryExportRecordStore());
  const report = await fresh.start();
  expect(report.removedConfigs).toContain(exp.name);
  expect(await exists(exp.overlayPath as string)).toBe(false);
  expect(await exists(join(env.stateDir, 'psk', exp.name))).toBe(false);
  await manager.remove(exp.name);
});
