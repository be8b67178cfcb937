import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Daemon } from '@sendense/process';
import { FileLockRegistry } from './locks';
import { RestorePointBusy } from './errors';
import { tempDir } from '../../test/helpers';

describe('FileLockRegistry (cross-process busy markers)', () => {
  let dir: string;
  let reg: FileLockRegistry;
  beforeAll(async () => {
    dir = await tempDir('locks');
    reg = new FileLockRegistry(dir);
  });
  afterAll(() => fsp.rm(dir, { recursive: true, force: true }));

  it('lets shared holders coexist and refuses exclusive ones, naming the holders', async () => {
    const a = await reg.acquire('rp1', 'mount');
    const b = await reg.acquire('rp1', 'export');
    const err = (await reg.acquire('rp1', 'consolidate').catch((e) => e)) as RestorePointBusy;
    expect(err).toBeInstanceOf(RestorePointBusy);
    expect(err.holders.map((h) => h.purpose).sort()).toEqual(['export', 'mount']);
    expect(err.holders[0]).toMatchObject({ pid: process.pid, hostname: os.hostname() });
    await a.release();
    await b.release();
    await b.release(); // idempotent
    expect(await reg.isBusy('rp1')).toBe(false);
    const w = await reg.acquire('rp1', 'write');
    await expect(reg.acquire('rp1', 'mount')).rejects.toBeInstanceOf(RestorePointBusy);
    await w.release();
    await expect(fsp.stat(path.join(dir, 'rp1'))).rejects.toThrow(); // empty lock dir removed
  });

  it('honours a lock of another live process and drops it once that process is dead', async () => {
    const other = await Daemon.start('sleep', ['30']);
    const lockDir = path.join(dir, 'rp2');
    await fsp.mkdir(lockDir, { recursive: true });
    await fsp.writeFile(
      path.join(lockDir, `mount.${other.pid}.abcd.lock`),
      JSON.stringify({ purpose: 'mount', pid: other.pid, hostname: os.hostname(), since: new Date().toISOString() }),
    );
    expect(await reg.holders('rp2')).toEqual([expect.objectContaining({ purpose: 'mount', pid: other.pid })]);
    await expect(reg.acquire('rp2', 'delete')).rejects.toBeInstanceOf(RestorePointBusy);
    await other.stop();
    expect(await reg.isBusy('rp2')).toBe(false);
    const d = await reg.acquire('rp2', 'delete');
    await d.release();
  });

  it('trusts locks from other hosts (their pid cannot be probed) and all-or-nothing acquisition', async () => {
    const lockDir = path.join(dir, 'rp3');
    await fsp.mkdir(lockDir, { recursive: true });
    await fsp.writeFile(path.join(lockDir, 'mount.1.ffff.lock'), JSON.stringify({ purpose: 'mount', pid: 1, hostname: 'elsewhere', since: '' }));
    await expect(reg.acquireAll(['rp4', 'rp3'], 'consolidate')).rejects.toBeInstanceOf(RestorePointBusy);
    expect(await reg.isBusy('rp4')).toBe(false); // rolled back
    expect(await reg.isBusy('rp3')).toBe(true);
  });
});
