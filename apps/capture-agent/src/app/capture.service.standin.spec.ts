import { randomBytes } from 'node:crypto';
import { Logger } from '@nestjs/common';
import type { PrepareBackupRequest, PrepareBackupResponse, VCenterCredentials } from '@sendense/contracts';
import { waitFor } from '@sendense/process';
import { startStandIn, VSphereClient, type HarnessClient, type StandIn } from '@sendense/vsphere';
import { MiB, qcow2Target, readImage, sameContent, scratchDir, slowTarget, topLayerBytes, type NbdTarget } from '../testing/targets';
import { CaptureError } from './capture-error';
import { CaptureService, SNAPSHOT_PREFIX, type CopyProgressEvent } from './capture.service';

// The Capture Agent's service against the VMware stand-in (govmomi simulator
// + qemu-backed disks with dirty bitmaps) and real qemu-nbd QCOW2 targets.

const GRAIN = 64 * 1024; // CBT granularity of the stand-in
const A = 2000;
const B = 2001;

// Real snapshots, qemu and NBD copies: seconds per test, more on a loaded host.
jest.setTimeout(90_000);

describe('CaptureService against the stand-in', () => {
  const scratch = scratchDir('capture-agent');
  let standIn: StandIn;
  let harness: HarnessClient;
  let vc: VSphereClient;
  let vcenter: VCenterCredentials;
  let service: CaptureService;
  const targets: NbdTarget[] = [];

  beforeAll(async () => {
    Logger.overrideLogger(['error']);
    standIn = await startStandIn({
      stateDir: `${scratch.dir}/standin`,
      cbtWindowBytes: 4 * MiB, // forces QueryChangedDiskAreas paging
      vms: [
        {
          name: 'backup-vm',
          disks: [
            { sizeMiB: 32, content: { type: 'random', percent: 40, seed: 1 } },
            { sizeMiB: 16, content: { type: 'random', percent: 30, seed: 2 } },
          ],
        },
        { name: 'busy-vm', changeTrackingEnabled: true, disks: [{ sizeMiB: 32, content: { type: 'random', percent: 60, seed: 3 } }] },
        { name: 'idle-vm', changeTrackingEnabled: true, disks: [{ sizeMiB: 8, content: { type: 'random', percent: 10, seed: 4 } }] },
      ],
    });
    harness = standIn.harness as HarnessClient;
    vcenter = { url: standIn.url, username: standIn.username, password: standIn.password, thumbprint: standIn.thumbprint };
    vc = await VSphereClient.connect({ url: standIn.url, username: standIn.username, password: standIn.password, tls: { thumbprint: standIn.thumbprint } });
    service = new CaptureService({ diskParallelism: 2, allowEnableCbt: true, progressIntervalMs: 100 });
  }, 240000);

  afterAll(async () => {
    await service?.releaseAll();
    for (const t of targets) await t.stop().catch(() => undefined);
    await vc?.logout().catch(() => undefined);
    await standIn?.stop();
    scratch.cleanup();
  });

  const request = (vm: string, disks: PrepareBackupRequest['disks'] = [], extra: Partial<PrepareBackupRequest> = {}): PrepareBackupRequest => ({
    runId: `run-${vm}-${Date.now()}`,
    vcenter,
    vm: { name: vm },
    disks,
    allowEnableCbt: true,
    reader: { kind: 'standin-nbd', harnessUrl: standIn.harnessUrl as string },
    ...extra,
  });

  async function target(name: string, size: number, backing?: string): Promise<NbdTarget> {
    const t = await qcow2Target(scratch.dir, name, size, backing);
    targets.push(t);
    return t;
  }

  async function snapshotUri(prep: PrepareBackupResponse, key: number): Promise<string> {
    return (await harness.snapshotNbd(prep.vmMoref, prep.snapshotMoref, key)).uri;
  }

  async function hasSnapshot(vmMoref: string): Promise<boolean> {
    return (await vc.getVm(vmMoref)).currentSnapshot !== undefined;
  }

  const disk = (prep: PrepareBackupResponse, key: number) => {
    const d = prep.disks.find((x) => x.deviceKey === key);
    if (!d) throw new Error(`no disk ${key} in prepare`);
    return d;
  };

  // State carried from the full to the incremental and the CBT reset.
  let full: PrepareBackupResponse;
  const fullFiles = new Map<number, string>();
  let incr: PrepareBackupResponse;

  it('refuses a VM with CBT off when enabling it is not allowed, and leaves no snapshot', async () => {
    const err = await service.prepare(request('backup-vm', [], { allowEnableCbt: false })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CaptureError);
    expect((err as CaptureError).code).toBe('CBT_DISABLED');
    expect((err as CaptureError).message).toContain('backup-vm');
    const vm = await vc.findVm({ name: 'backup-vm' });
    expect(vm.changeTrackingEnabled).toBe(false);
    expect(vm.currentSnapshot).toBeUndefined();
    const missing = await service.prepare(request('no-such-vm')).catch((e: unknown) => e);
    expect(missing).toMatchObject({ code: 'NOT_FOUND' });
    // (A device key the VM does not have is a disk removed from the VM: it is skipped, see the full backup test.)
  });

  it('full backup of a two-disk VM: enables CBT, copies the allocated extents, targets read back identical to the snapshot', async () => {
    // Disk 4711 was "removed from the VM": skipped, the VM's real disks are prepared.
    full = await service.prepare(request('backup-vm', [{ deviceKey: 4711, previousChangeId: null }]));
    expect(full.cbtEnabledNow).toBe(true);
    expect(full.vmName).toBe('backup-vm');
    expect(full.disks.map((d) => [d.deviceKey, d.mode, d.fullReason, d.capacityBytes])).toEqual([
      [A, 'full', 'cbt-just-enabled', 32 * MiB],
      [B, 'full', 'cbt-just-enabled', 16 * MiB],
    ]);
    for (const d of full.disks) {
      // Allocated areas only: the random content fills ~40% / ~30% of the disk.
      expect(d.bytesToCopy).toBeGreaterThan(0.2 * d.capacityBytes);
      expect(d.bytesToCopy).toBeLessThan(0.8 * d.capacityBytes);
      expect(d.changeId).toMatch(/\/\d+$/);
      expect(d.fileName).toBe(`[LocalDS_0] backup-vm/backup-vm_${d.deviceKey - A}.vmdk`);
    }
    // changeId at the snapshot = the snapshot's config.
    const snapDisks = await vc.getSnapshotDisks({ type: 'VirtualMachineSnapshot', value: full.snapshotMoref });
    expect(full.disks.map((d) => d.changeId)).toEqual(snapDisks.map((d) => d.changeId));
    expect(await hasSnapshot(full.vmMoref)).toBe(true);

    const ta = await target('full-a', 32 * MiB);
    const tb = await target('full-b', 16 * MiB);
    const events: CopyProgressEvent[] = [];
    const results = await service.copy(
      {
        sessionId: full.sessionId,
        targets: [
          { deviceKey: A, uri: ta.uri },
          { deviceKey: B, uri: tb.uri },
        ],
      },
      { onProgress: (e) => events.push(e) },
    );
    expect(results.map((r) => r.deviceKey)).toEqual([A, B]);
    for (const r of results) {
      const d = disk(full, r.deviceKey);
      expect(r.changeId).toBe(d.changeId);
      expect(r.bytesWritten + r.bytesZeroed).toBe(d.bytesToCopy);
      expect(r.extentCount).toBe(d.extentCount);
    }
    expect(events.length).toBeGreaterThan(0);
    const last = events[events.length - 1];
    expect(last.bytesDone).toBe(last.bytesTotal);
    expect(last.disks.map((d) => d.phase)).toEqual(['done', 'done']);

    await ta.stop();
    await tb.stop();
    expect(await sameContent(ta.file, await snapshotUri(full, A))).toMatchObject({ identical: true });
    expect(await sameContent(tb.file, await snapshotUri(full, B))).toMatchObject({ identical: true });
    fullFiles.set(A, ta.file).set(B, tb.file);

    expect(await service.release(full.sessionId)).toEqual({ sessionId: full.sessionId, released: true });
    expect(await hasSnapshot(full.vmMoref)).toBe(false);
    expect(await service.release(full.sessionId)).toEqual({ sessionId: full.sessionId, released: false });
    console.log(
      `full: ${results.map((r) => `disk ${r.deviceKey} ${r.bytesWritten + r.bytesZeroed} B in ${r.durationMs} ms`).join(', ')}, ${events.length} progress events`,
    );
  });

  it('incremental after known guest writes: only the changed blocks, into an overlay that reads back as the second snapshot (zeroed block reads zero)', async () => {
    // A block holding data in the full that the guest now zeroes.
    let zeroAt = -1;
    for (let off = 24 * MiB; off < 32 * MiB; off += GRAIN) {
      const data = (await readImage(scratch.dir, fullFiles.get(A) as string, off, GRAIN)) as Buffer;
      if (data.some((b) => b !== 0)) {
        zeroAt = off;
        break;
      }
    }
    expect(zeroAt).toBeGreaterThan(0);
    await harness.write('backup-vm', A, 5 * MiB + 100, Buffer.alloc(10, 0x22)); // 1 grain
    await harness.write('backup-vm', A, 12 * MiB - 4096, randomBytes(8192)); // across a window edge: 2 grains
    await harness.zero('backup-vm', A, zeroAt, GRAIN); // 1 grain
    const filled = await harness.fill('backup-vm', B, 5, 42); // ~5% of disk B in 64 KiB chunks
    const changedA = 4 * GRAIN;
    const changedB = filled.reduce((n, a) => n + a.length, 0);
    expect(changedB).toBeGreaterThan(0);

    incr = await service.prepare(
      request(
        'backup-vm',
        full.disks.map((d) => ({ deviceKey: d.deviceKey, previousChangeId: d.changeId })),
      ),
    );
    expect(incr.cbtEnabledNow).toBe(false);
    const [ia, ib] = [disk(incr, A), disk(incr, B)];
    expect([ia.mode, ib.mode]).toEqual(['incremental', 'incremental']);
    expect(ia.fullReason).toBeUndefined();
    expect(ia.changeId).not.toBe(disk(full, A).changeId);
    expect(Math.abs(ia.bytesToCopy - changedA)).toBeLessThanOrEqual(0.1 * changedA);
    expect(Math.abs(ib.bytesToCopy - changedB)).toBeLessThanOrEqual(0.1 * changedB);

    const ta = await target('incr-a', 32 * MiB, fullFiles.get(A));
    const tb = await target('incr-b', 16 * MiB, fullFiles.get(B));
    const results = await service.copy({
      sessionId: incr.sessionId,
      targets: [
        { deviceKey: A, uri: ta.uri },
        { deviceKey: B, uri: tb.uri },
      ],
    });
    const [ra, rb] = results;
    expect(ra.bytesWritten + ra.bytesZeroed).toBe(ia.bytesToCopy);
    expect(rb.bytesWritten + rb.bytesZeroed).toBe(ib.bytesToCopy);
    expect(ra.bytesZeroed).toBeGreaterThanOrEqual(GRAIN); // the zeroed block went as WRITE_ZEROES
    await ta.stop();
    await tb.stop();

    expect(await sameContent(ta.file, await snapshotUri(incr, A))).toMatchObject({ identical: true });
    expect(await sameContent(tb.file, await snapshotUri(incr, B))).toMatchObject({ identical: true });
    expect((await readImage(scratch.dir, ta.file, zeroAt, GRAIN)).equals(Buffer.alloc(GRAIN))).toBe(true);
    expect((await readImage(scratch.dir, fullFiles.get(A) as string, zeroAt, GRAIN)).equals(Buffer.alloc(GRAIN))).toBe(false);
    // The overlay holds only the changed clusters.
    const topA = await topLayerBytes(ta.file);
    const topB = await topLayerBytes(tb.file);
    expect(topA).toBeLessThanOrEqual(1.1 * changedA);
    expect(topB).toBeLessThanOrEqual(1.1 * changedB);

    expect(await service.release(incr.sessionId)).toMatchObject({ released: true });
    expect(await hasSnapshot(incr.vmMoref)).toBe(false);
    console.log(
      `incremental: disk A changed ${changedA} B, transferred ${ra.bytesWritten + ra.bytesZeroed} B (${ra.bytesZeroed} as zeroes), overlay ${topA} B; ` +
        `disk B changed ${changedB} B, transferred ${rb.bytesWritten + rb.bytesZeroed} B, overlay ${topB} B`,
    );
  });

  it('CBT reset (unclean stop of the disk daemon) and an invalid changeId turn the disk into a full, saying why', async () => {
    await harness.crash('backup-vm', A);
    await harness.write('backup-vm', A, 1 * MiB, Buffer.alloc(4096, 0x55));
    const prevs = incr.disks.map((d) => ({ deviceKey: d.deviceKey, previousChangeId: d.changeId }));
    const after = await service.prepare(request('backup-vm', prevs));
    const [da, db] = [disk(after, A), disk(after, B)];
    expect(da).toMatchObject({ mode: 'full', fullReason: 'cbt-reset' });
    expect(da.fullReasonDetail).toContain('Error caused by file');
    expect(da.fullReasonDetail).toContain(disk(incr, A).changeId);
    expect(da.bytesToCopy).toBeGreaterThan(0.2 * da.capacityBytes); // all allocated areas
    // The other disk kept its change tracking.
    expect(db).toMatchObject({ mode: 'incremental', bytesToCopy: 0, extentCount: 0 });
    // An incremental with nothing changed still copies (nothing) and flushes.
    const tb = await target('incr2-b', 16 * MiB, fullFiles.get(B));
    const [rb] = await service.copy({ sessionId: after.sessionId, targets: [{ deviceKey: B, uri: tb.uri }] });
    expect(rb).toMatchObject({ deviceKey: B, bytesWritten: 0, bytesZeroed: 0 });
    await service.release(after.sessionId);

    const epochB = db.changeId.slice(0, db.changeId.lastIndexOf('/'));
    const again = await service.prepare(
      request(
        'backup-vm',
        [
          { deviceKey: A, previousChangeId: da.changeId, full: true },
          { deviceKey: B, previousChangeId: `${epochB}/999` },
        ],
        { vm: { instanceUuid: after.instanceUuid as string } },
      ),
    );
    expect(again.vmMoref).toBe(after.vmMoref);
    expect(disk(again, A)).toMatchObject({ mode: 'full', fullReason: 'requested' });
    expect(disk(again, B)).toMatchObject({ mode: 'full', fullReason: 'invalid-change-id' });
    expect(disk(again, B).fullReasonDetail).toContain('FileFault');
    await service.release(again.sessionId);
    expect(await hasSnapshot(again.vmMoref)).toBe(false);
  });

  it('copies snapshot-time data while the guest keeps writing the same blocks', async () => {
    const region = { offset: 4 * MiB, length: 4 * MiB };
    await harness.write('busy-vm', A, region.offset, Buffer.alloc(region.length, 0xaa));
    const prep = await service.prepare(request('busy-vm'));
    expect(disk(prep, A)).toMatchObject({ mode: 'full', fullReason: 'no-previous-change-id' });
    const t = await target('busy', 32 * MiB);
    let copying = true;
    let guestWrites = 0;
    let writesDuringCopy = 0;
    const guest = (async () => {
      for (let i = 0; copying && i < 1000; i++) {
        const off = region.offset + ((i * 256 * 1024) % region.length);
        await harness.write('busy-vm', A, off, Buffer.alloc(256 * 1024, 0xbb));
        guestWrites++;
      }
    })();
    const copy = service
      .copy(
        // Small requests, one at a time: the copy takes long enough to overlap the writes.
        { sessionId: prep.sessionId, targets: [{ deviceKey: A, uri: t.uri }], tuning: { requestSize: 64 * 1024, queueDepth: 1, connections: 1 } },
        { onProgress: (e) => (e.bytesDone > 0 && e.bytesDone < e.bytesTotal ? (writesDuringCopy = guestWrites) : undefined) },
      )
      .finally(() => (copying = false));
    await Promise.all([copy, guest]);
    await t.stop();
    expect(guestWrites).toBeGreaterThan(0);
    expect((await readImage(scratch.dir, t.file, region.offset, region.length)).equals(Buffer.alloc(region.length, 0xaa))).toBe(true);
    expect((await harness.read('busy-vm', A, region.offset, 4096)).equals(Buffer.alloc(4096, 0xbb))).toBe(true);
    expect(await sameContent(t.file, await snapshotUri(prep, A))).toMatchObject({ identical: true });
    await service.release(prep.sessionId);
    console.log(`guest wrote ${guestWrites} x 256 KiB while the copy ran (${writesDuringCopy} seen by mid-copy progress); target holds snapshot-time data`);
  });

  it('cancel aborts a running copy; release removes the snapshot', async () => {
    const prep = await service.prepare(request('busy-vm'));
    const slow = await slowTarget(scratch.dir, 'slow', 32 * MiB, 20);
    targets.push(slow);
    let cancelledAt: CopyProgressEvent | undefined;
    const started = Date.now();
    const err = await service
      .copy(
        { sessionId: prep.sessionId, targets: [{ deviceKey: A, uri: slow.uri }], tuning: { requestSize: 64 * 1024, queueDepth: 1, connections: 1 } },
        {
          onProgress: (e) => {
            if (!cancelledAt && e.bytesDone > 0) {
              cancelledAt = e;
              expect(service.cancel(prep.sessionId)).toEqual({ sessionId: prep.sessionId, cancelled: true });
            }
          },
        },
      )
      .catch((e: unknown) => e);
    const tookMs = Date.now() - started;
    expect(err).toBeInstanceOf(CaptureError);
    expect((err as CaptureError).code).toBe('CANCELLED');
    expect(cancelledAt).toBeDefined();
    expect((cancelledAt as CopyProgressEvent).bytesDone).toBeLessThan((cancelledAt as CopyProgressEvent).bytesTotal);
    expect(service.cancel(prep.sessionId)).toMatchObject({ cancelled: false }); // nothing runs now
    expect(await hasSnapshot(prep.vmMoref)).toBe(true);
    expect(await service.release(prep.sessionId)).toMatchObject({ released: true });
    expect(await hasSnapshot(prep.vmMoref)).toBe(false);
    console.log(
      `cancelled after ${(cancelledAt as CopyProgressEvent).bytesDone} of ${(cancelledAt as CopyProgressEvent).bytesTotal} B; copy call ended ${tookMs} ms after start`,
    );

    // release while a copy runs: the copy is aborted, then the snapshot removed.
    const prep2 = await service.prepare(request('busy-vm'));
    const copy2 = service
      .copy({ sessionId: prep2.sessionId, targets: [{ deviceKey: A, uri: slow.uri }], tuning: { requestSize: 64 * 1024, queueDepth: 1, connections: 1 } })
      .catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 300));
    expect(await service.release(prep2.sessionId)).toMatchObject({ released: true });
    expect(await copy2).toMatchObject({ code: 'CANCELLED' });
    expect(await hasSnapshot(prep2.vmMoref)).toBe(false);
  });

  it('a copy error names VM, disk, server and export, and the session stays usable', async () => {
    const prep = await service.prepare(request('idle-vm'));
    const err = await service
      .copy({ sessionId: prep.sessionId, targets: [{ deviceKey: A, uri: `nbd+unix:///disk?socket=${scratch.dir}/nothing.sock` }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CaptureError);
    expect((err as CaptureError).code).toBe('COPY_FAILED');
    expect((err as CaptureError).message).toContain('idle-vm');
    expect((err as CaptureError).message).toContain(`disk ${A}`);
    expect((err as CaptureError).message).toContain('nothing.sock');
    const bad = await service.copy({ sessionId: prep.sessionId, targets: [{ deviceKey: 9999, uri: 'nbd://x/y' }] }).catch((e: unknown) => e);
    expect(bad).toMatchObject({ code: 'INVALID_ARGUMENT' });
    const short = await target('idle-short', 4 * MiB);
    const tooSmall = await service.copy({ sessionId: prep.sessionId, targets: [{ deviceKey: A, uri: short.uri }] }).catch((e: unknown) => e);
    expect(tooSmall).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect((tooSmall as CaptureError).message).toContain(`holds ${4 * MiB} bytes, the disk ${8 * MiB}`);
    const t = await target('idle', 8 * MiB);
    const [r] = await service.copy({ sessionId: prep.sessionId, targets: [{ deviceKey: A, uri: t.uri }] });
    expect(r.bytesWritten + r.bytesZeroed).toBe(disk(prep, A).bytesToCopy);
    await service.release(prep.sessionId);
  });

  it("one failing disk stops the others: the copy fails at once with that disk's error", async () => {
    const prep = await service.prepare(request('backup-vm'));
    const slow = await slowTarget(scratch.dir, 'slow-a', 32 * MiB, 20);
    targets.push(slow);
    const events: CopyProgressEvent[] = [];
    const started = Date.now();
    const err = await service
      .copy(
        {
          sessionId: prep.sessionId,
          targets: [
            { deviceKey: A, uri: slow.uri },
            { deviceKey: B, uri: `nbd+unix:///disk?socket=${scratch.dir}/gone.sock` },
          ],
          tuning: { requestSize: 64 * 1024, queueDepth: 1, connections: 1 },
        },
        { onProgress: (e) => events.push(e) },
      )
      .catch((e: unknown) => e);
    const tookMs = Date.now() - started;
    expect(err).toMatchObject({ code: 'COPY_FAILED' });
    expect((err as CaptureError).message).toContain(`disk ${B}`);
    expect((err as CaptureError).message).toContain('gone.sock');
    // Disk A alone would take over 5 s through the slow target.
    expect(tookMs).toBeLessThan(5000);
    expect(events[0].disks.map((d) => d.phase)).toEqual(['copying', 'copying']);
    await service.release(prep.sessionId);
    expect(await hasSnapshot(prep.vmMoref)).toBe(false);
  });

  it('release is idempotent also when the snapshot was removed behind the agent', async () => {
    const prep = await service.prepare(request('idle-vm', [], { vm: { moref: (await vc.findVm({ name: 'idle-vm' })).ref.value }, quiesce: true }));
    expect(prep.vmName).toBe('idle-vm');
    await vc.removeSnapshot({ type: 'VirtualMachineSnapshot', value: prep.snapshotMoref });
    expect(await service.release(prep.sessionId)).toMatchObject({ released: true });
    expect(await service.release(prep.sessionId)).toMatchObject({ released: false });
  });

  it("removes a snapshot an interrupted backup left on the VM, keeping the operator's own and those of live sessions", async () => {
    const vm = await vc.findVm({ name: 'idle-vm' });
    const mine = await vc.createSnapshot(vm.ref, { name: 'before-upgrade' });
    const stale = await vc.createSnapshot(vm.ref, { name: `${SNAPSHOT_PREFIX}run-that-crashed` });
    const prep = await service.prepare(request('idle-vm'));
    expect(prep.staleSnapshots).toEqual([{ moref: stale.value, name: `${SNAPSHOT_PREFIX}run-that-crashed`, createTime: expect.any(String), removed: true }]);
    // A second prepare while the first session lives must not take its snapshot.
    const again = await service.prepare(request('idle-vm'));
    expect(again.staleSnapshots).toBeUndefined();
    expect((await vc.listSnapshots(vm.ref)).map((x) => x.ref.value)).toEqual([mine.value, prep.snapshotMoref, again.snapshotMoref]);
    await service.release(again.sessionId);
    await service.release(prep.sessionId);
    expect((await vc.listSnapshots(vm.ref)).map((x) => x.name)).toEqual(['before-upgrade']);
    await vc.removeSnapshot(mine);
  });

  it('releases a session whose lease runs out itself; renewing keeps it; late calls hear LEASE_EXPIRED', async () => {
    const prep = await service.prepare(request('idle-vm', [], { leaseMs: 1500 }));
    expect(prep.leaseMs).toBe(1500);
    expect(Date.parse(prep.expiresAt) - Date.now()).toBeLessThanOrEqual(1500);
    // Renewed for three leases: still there.
    for (let i = 0; i < 9; i++) {
      await new Promise((r) => setTimeout(r, 500));
      expect(service.renew(prep.sessionId)).toMatchObject({ sessionId: prep.sessionId, leaseMs: 1500 });
    }
    expect(await hasSnapshot(prep.vmMoref)).toBe(true);
    await waitFor(async () => !(await hasSnapshot(prep.vmMoref)), { timeoutMs: 15000, intervalMs: 250, message: 'the expired session to be released' });
    expect(service.sessions.find(prep.sessionId)).toBeUndefined();
    expect(await service.release(prep.sessionId)).toMatchObject({ released: false, leaseExpired: expect.stringContaining('lease') });
    const err = await service.copy({ sessionId: prep.sessionId, targets: [{ deviceKey: A, uri: 'nbd://127.0.0.1/x' }] }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'LEASE_EXPIRED', retryable: true });
    expect(() => service.renew(prep.sessionId)).toThrow(/expired at .* removed; prepare a new session/);
    // A session that never existed is still NOT_FOUND.
    expect(() => service.renew('no-such-session')).toThrow(/not found/);
    await expect(service.prepare(request('idle-vm', [], { leaseMs: 10 }))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
