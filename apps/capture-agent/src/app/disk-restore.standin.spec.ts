import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';
import type { RestoreDiskRequest, VCenterCredentials } from '@sendense/contracts';
import { DEFAULT_REQUEST_SIZE } from '@sendense/nbd';
import { run } from '@sendense/process';
import { startStandIn, VSphereClient, type HarnessClient, type StandIn } from '@sendense/vsphere';
import { MiB, qcow2Target, scratchDir, type NbdTarget } from '../testing/targets';
import { CaptureError } from './capture-error';
import { CaptureService } from './capture.service';
import { DiskRestoreService, type RestoreProgressEvent } from './disk-restore.service';

/**
 * Writing a restore point back into a VM's disk, against the stand-in:
 * quick rollback (only what changed since the restore point's changeId)
 * and full write, read back byte for byte from the VM's live disk.
 */
jest.setTimeout(120_000);

const GRAIN = 64 * 1024;
const SIZE = 32 * MiB;

describe('DiskRestoreService against the stand-in', () => {
  const scratch = scratchDir('disk-restore');
  let standIn: StandIn;
  let harness: HarnessClient;
  let vc: VSphereClient;
  let vcenter: VCenterCredentials;
  const capture = new CaptureService({ diskParallelism: 1, allowEnableCbt: true });
  const restores = new DiskRestoreService({ progressIntervalMs: 50 });
  let point: NbdTarget;
  let pointRaw: string;
  let changeId: string;
  let key: number;

  beforeAll(async () => {
    Logger.overrideLogger(['error']);
    standIn = await startStandIn({
      stateDir: `${scratch.dir}/standin`,
      vms: [
        { name: 'rollback-vm', changeTrackingEnabled: true, disks: [{ sizeMiB: 32, content: { type: 'random', percent: 40, seed: 5 } }] },
        { name: 'blank-vm', changeTrackingEnabled: true, disks: [{ sizeMiB: 32, content: { type: 'empty' } }] },
      ],
    });
    harness = standIn.harness as HarnessClient;
    vcenter = { url: standIn.url, username: standIn.username, password: standIn.password, thumbprint: standIn.thumbprint };
    vc = await VSphereClient.connect({ url: standIn.url, username: standIn.username, password: standIn.password, tls: { thumbprint: standIn.thumbprint } });
    // The restore point: a full backup of rollback-vm, as the backup path takes it.
    const prep = await capture.prepare({
      runId: 'rp',
      vcenter,
      vm: { name: 'rollback-vm' },
      disks: [],
      allowEnableCbt: true,
      reader: { kind: 'standin-nbd', harnessUrl: standIn.harnessUrl as string },
    });
    key = prep.disks[0]!.deviceKey;
    changeId = prep.disks[0]!.changeId;
    point = await qcow2Target(scratch.dir, 'point', SIZE);
    await capture.copy({ sessionId: prep.sessionId, targets: [{ deviceKey: key, uri: point.uri }] });
    await capture.release(prep.sessionId);
    pointRaw = join(scratch.dir, 'point.raw');
    await run('qemu-img', ['convert', '-U', '-f', 'qcow2', '-O', 'raw', point.file, pointRaw]);
  }, 240_000);

  afterAll(async () => {
    await point?.stop().catch(() => undefined);
    await vc?.logout().catch(() => undefined);
    await standIn?.stop();
    scratch.cleanup();
  });

  const request = (vm: string, over: Partial<RestoreDiskRequest> = {}): RestoreDiskRequest => ({
    restoreId: `r-${vm}-${Date.now()}`,
    vcenter,
    vm: { name: vm },
    deviceKey: key,
    sourceUri: point.uri,
    mode: 'quick',
    changeId,
    writer: { kind: 'standin-nbd', harnessUrl: standIn.harnessUrl as string },
    ...over,
  });

  /** The VM's disk as it is now, byte for byte equal to the restore point? */
  async function diskEqualsPoint(vm: string, deviceKey: number): Promise<boolean> {
    const live = (await harness.vm(vm)).disks.find((d) => d.key === deviceKey)!.liveUri;
    const out = join(scratch.dir, `${vm}.raw`);
    await run('nbdcopy', [live, out]);
    try {
      return (await readFile(out)).equals(await readFile(pointRaw));
    } finally {
      await rm(out, { force: true });
    }
  }

  it('refuses to write into a powered-on VM, with the reason', async () => {
    const err = await restores.restore(request('rollback-vm')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CaptureError);
    expect((err as CaptureError).code).toBe('VM_POWERED_ON');
    expect((err as CaptureError).message).toMatch(/poweredOn; power it off/);
  });

  it('quick rollback of a wrecked disk writes only what changed and reads back byte-identical', async () => {
    // The guest changes after the backup, then the disk is wrecked: partition table and random ranges.
    const grains = new Set<number>();
    const mark = (offset: number, length: number) => {
      for (let g = Math.floor(offset / GRAIN); g * GRAIN < offset + length; g++) grains.add(g);
    };
    for (const a of await harness.fill('rollback-vm', key, 5, 77)) mark(a.start, a.length);
    await harness.write('rollback-vm', key, 0, randomBytes(GRAIN));
    mark(0, GRAIN);
    await harness.zero('rollback-vm', key, 8 * MiB, MiB);
    mark(8 * MiB, MiB);
    for (const off of [5 * MiB, 17 * MiB + 3 * GRAIN, 29 * MiB]) {
      await harness.write('rollback-vm', key, off, randomBytes(4 * GRAIN));
      mark(off, 4 * GRAIN);
    }
    const changedBytes = grains.size * GRAIN;
    expect(await diskEqualsPoint('rollback-vm', key)).toBe(false);

    const vm = await vc.findVm({ name: 'rollback-vm' });
    await vc.powerOff(vm.ref);
    const events: RestoreProgressEvent[] = [];
    const r = await restores.restore(request('rollback-vm'), { onProgress: (e) => events.push(e) });
    expect(r).toMatchObject({ mode: 'quick' });
    expect(r.fallbackReason).toBeUndefined();
    expect(await diskEqualsPoint('rollback-vm', key)).toBe(true);
    const written = r.bytesWritten + r.bytesZeroed;
    process.stdout.write(`quick rollback: guest changed ${changedBytes} bytes, restore wrote ${written} (${r.bytesWritten} data + ${r.bytesZeroed} zeroes)\n`);
    expect(Math.abs(written - changedBytes)).toBeLessThanOrEqual(changedBytes * 0.1);
    expect(written).toBeLessThan(SIZE / 4);
    expect(events.some((e) => e.phase === 'writing')).toBe(true);
    // The snapshot it took to ask vCenter is gone.
    expect((await vc.findVm({ name: 'rollback-vm' })).currentSnapshot).toBeUndefined();
  });

  it('falls back to a full write when the changeId is no longer valid, and says why', async () => {
    await harness.write('rollback-vm', key, 12 * MiB, randomBytes(GRAIN));
    const bogus = `${changeId.slice(0, changeId.lastIndexOf('/'))}/999999`;
    const r = await restores.restore(request('rollback-vm', { changeId: bogus }));
    expect(r.mode).toBe('full');
    expect(r.fallbackReason).toMatch(/invalid-change-id|cbt-reset/);
    expect(r.fallbackDetail).toContain(bogus);
    expect(await diskEqualsPoint('rollback-vm', key)).toBe(true);
  });

  it('a full write to a blank new disk copies the allocated extents and zeroes the rest', async () => {
    const vm = await vc.findVm({ name: 'blank-vm' });
    await vc.powerOff(vm.ref);
    const blankKey = vm.disks[0]!.key;
    const r = await restores.restore(request('blank-vm', { mode: 'full', changeId: null, deviceKey: blankKey }));
    expect(r).toMatchObject({ mode: 'full', bytesPlanned: SIZE });
    expect(r.bytesWritten + r.bytesZeroed).toBe(SIZE);
    // Only requests holding data travel as data (the copier decides per request of
    // DEFAULT_REQUEST_SIZE); all-zero requests and holes go as WRITE_ZEROES.
    const raw = await readFile(pointRaw);
    const zero = Buffer.alloc(DEFAULT_REQUEST_SIZE);
    let dataBytes = 0;
    for (let off = 0; off < raw.length; off += DEFAULT_REQUEST_SIZE)
      if (!raw.subarray(off, off + DEFAULT_REQUEST_SIZE).equals(zero)) dataBytes += DEFAULT_REQUEST_SIZE;
    expect(dataBytes).toBeLessThan(SIZE);
    expect(r.bytesWritten).toBeLessThanOrEqual(dataBytes);
    expect(r.bytesWritten).toBeGreaterThan(dataBytes * 0.9);
    expect(await diskEqualsPoint('blank-vm', blankKey)).toBe(true);
  });

  it('cancel stops a running restore', async () => {
    const req = request('blank-vm', {
      mode: 'full',
      changeId: null,
      deviceKey: (await vc.findVm({ name: 'blank-vm' })).disks[0]!.key,
      tuning: { requestSize: 64 * 1024, connections: 1, queueDepth: 1 },
    });
    const pending = restores.restore(req, {
      onProgress: (e) => {
        if (e.phase === 'writing') restores.cancel(req.restoreId);
      },
    });
    const err = await pending.catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'CANCELLED' });
    expect(restores.size).toBe(0);
  });
});
