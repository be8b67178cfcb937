import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, waitFor } from '@sendense/process';
import { InvalidChangeIdError, NotFoundError, SoapFaultError } from './errors';
import { VSphereClient } from './client';
import type { MoRef } from './xml';
import { startStandIn, type StandIn } from '../testing/stand-in';
import type { HarnessClient } from '../testing/harness-client';
import { MiB, scratchDir } from '../testing/test-env';

// The stand-in with harness VMs: real simulator behaviour for everything
// but QueryChangedDiskAreas/changeId and disk data, which qemu provides.

const GRAIN = 64 * 1024; // dirty-bitmap granularity of the stand-in
const WINDOW = 4 * MiB; // QueryChangedDiskAreas window, forces paging

describe('VSphereClient against the stand-in (harness VMs)', () => {
  const scratch = scratchDir('vsphere-standin');
  let standIn: StandIn;
  let harness: HarnessClient;
  let client: VSphereClient;

  beforeAll(async () => {
    standIn = await startStandIn({
      stateDir: scratch.dir,
      cbtWindowBytes: WINDOW,
      vms: [
        {
          name: 'cbt-vm',
          disks: [
            { sizeMiB: 32, content: { type: 'empty' } },
            { sizeMiB: 16, content: { type: 'random', percent: 20 } },
          ],
        },
        {
          name: 'fs-vm',
          changeTrackingEnabled: true,
          disks: [{ sizeMiB: 48, content: { type: 'filesystem', filesystem: 'ext4', partitionTable: 'mbr', files: { '/etc/hostname': 'fs-vm\n' } } }],
        },
      ],
    });
    harness = standIn.harness as HarnessClient;
    client = await VSphereClient.connect({ url: standIn.url, username: standIn.username, password: standIn.password, tls: { thumbprint: standIn.thumbprint } });
  }, 240000);

  afterAll(async () => {
    await client?.logout();
    await standIn?.stop();
    scratch.cleanup();
  });

  async function changed(vm: MoRef, snap: MoRef, key: number, changeId: string) {
    return client.queryChangedDiskAreas(vm, snap, key, changeId);
  }

  it('finds harness VMs by name, moref and instance UUID with their disks', async () => {
    const vm = await client.findVm({ name: 'cbt-vm' });
    expect(vm.disks.map((d) => [d.key, d.capacityBytes])).toEqual([
      [2000, 32 * MiB],
      [2001, 16 * MiB],
    ]);
    expect(vm.disks[0].fileName).toBe('[LocalDS_0] cbt-vm/cbt-vm_0.vmdk');
    expect(vm.changeTrackingEnabled).toBe(false);
    expect((await client.findVm({ moref: vm.ref.value })).name).toBe('cbt-vm');
    expect((await client.findVm({ instanceUuid: vm.instanceUuid as string })).ref).toEqual(vm.ref);
  });

  it('refuses QueryChangedDiskAreas with FileFault while CBT is disabled', async () => {
    const vm = await client.findVm({ name: 'cbt-vm' });
    const snap = await client.createSnapshot(vm.ref, { name: 'no-cbt' });
    const err = await client.queryChangedDiskAreasPage(vm.ref, snap, 2000, '*', 0).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidChangeIdError);
    expect((err as InvalidChangeIdError).faultType).toBe('FileFault');
    expect((err as InvalidChangeIdError).faultText).toBe('Error caused by file [LocalDS_0] cbt-vm/cbt-vm_0.vmdk');
    expect((await client.getSnapshotDisks(snap))[0].changeId).toBeUndefined();
    await client.removeSnapshot(snap);
  });

  it('reports exactly the blocks written between two snapshots, paging by window', async () => {
    const vm = await client.findVm({ name: 'cbt-vm' });
    await client.enableChangeTracking(vm.ref);
    expect((await client.getVm(vm.ref)).changeTrackingEnabled).toBe(true);

    await harness.write('cbt-vm', 2000, 3 * MiB, Buffer.alloc(8192, 0x11));
    const s1 = await client.createSnapshot(vm.ref, { name: 's1' });
    const c1 = (await client.getSnapshotDisks(s1))[0].changeId as string;
    expect(c1).toMatch(/^[0-9a-f ]+-[0-9a-f ]+\/\d+$/);
    // Known writes: unaligned, spanning a grain edge, across a window edge.
    await harness.write('cbt-vm', 2000, 5 * MiB + 100, Buffer.alloc(10, 0x22));
    await harness.write('cbt-vm', 2000, 10 * MiB - 4096, Buffer.alloc(8192, 0x33));
    await harness.write('cbt-vm', 2000, 16 * MiB - GRAIN, Buffer.alloc(2 * GRAIN, 0x44));
    await harness.zero('cbt-vm', 2000, 30 * MiB, GRAIN);
    // "*" is every area allocated at snapshot time: only what the guest had
    // written before s1, even though the writes above (into unallocated
    // areas) were copied into the snapshot's fleecing overlay since.
    const all1 = await changed(vm.ref, s1, 2000, '*');
    expect(all1.areas).toEqual([{ start: 3 * MiB, length: GRAIN }]);
    expect(all1.pages).toBe(32 / 4);
    const s2 = await client.createSnapshot(vm.ref, { name: 's2' });
    const c2 = (await client.getSnapshotDisks(s2))[0].changeId as string;
    expect(c2).not.toBe(c1);
    expect((await client.getVm(vm.ref)).disks[0].changeId).toBe(c2);
    // The snapshot tree: s2 was taken on top of s1.
    expect((await client.listSnapshots(vm.ref)).map((x) => [x.name, x.ref.value, x.parent?.value])).toEqual([
      ['s1', s1.value, undefined],
      ['s2', s2.value, s1.value],
    ]);

    const delta = await changed(vm.ref, s2, 2000, c1);
    expect(delta.areas).toEqual([
      { start: 5 * MiB, length: GRAIN },
      { start: 10 * MiB - GRAIN, length: 2 * GRAIN },
      { start: 16 * MiB - GRAIN, length: 2 * GRAIN },
      { start: 30 * MiB, length: GRAIN },
    ]);
    // One window holds one page; the area across 16 MiB is cut in two there.
    const page = await client.queryChangedDiskAreasPage(vm.ref, s2, 2000, c1, 12 * MiB);
    expect(page).toEqual({ startOffset: 12 * MiB, length: WINDOW, changedArea: [{ start: 16 * MiB - GRAIN, length: GRAIN }] });

    expect((await changed(vm.ref, s2, 2000, c2)).areas).toEqual([]);
    // The other disk was not written: nothing changed there.
    const c1b = (await client.getSnapshotDisks(s1))[1].changeId as string;
    expect((await changed(vm.ref, s2, 2001, c1b)).areas).toEqual([]);
    await client.removeSnapshot(s1);
    // Removing the older snapshot keeps its changeId usable.
    expect((await changed(vm.ref, s2, 2000, c1)).areas).toHaveLength(4);
    await client.removeSnapshot(s2);
    expect(await client.listSnapshots(vm.ref)).toEqual([]);
  });

  it('answers an unknown changeId and a bad startOffset with the vCenter faults', async () => {
    const vm = await client.findVm({ name: 'cbt-vm' });
    const snap = await client.createSnapshot(vm.ref, { name: 'faults' });
    const bad = await client.queryChangedDiskAreasPage(vm.ref, snap, 2000, '52 00 00 00 00 00 00 00-00 00 00 00 00 00 00 00/1', 0).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(InvalidChangeIdError);
    const offset = await client.queryChangedDiskAreasPage(vm.ref, snap, 2000, '*', 64 * MiB).catch((e: unknown) => e);
    expect(offset).toBeInstanceOf(SoapFaultError);
    expect((offset as SoapFaultError).faultType).toBe('InvalidArgument');
    const missing = await client
      .queryChangedDiskAreasPage(vm.ref, { type: 'VirtualMachineSnapshot', value: 'snapshot-999' }, 2000, '*', 0)
      .catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(NotFoundError);
    expect((missing as NotFoundError).faultType).toBe('ManagedObjectNotFound');
    await client.removeSnapshot(snap);
    const gone = await client.removeSnapshot(snap).catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(NotFoundError);
  });

  it('serves snapshot-time data over NBD while the guest overwrites the same blocks', async () => {
    const vm = await client.findVm({ name: 'cbt-vm' });
    const region = { offset: 8 * MiB, length: 2 * MiB };
    await harness.write('cbt-vm', 2000, region.offset, Buffer.alloc(region.length, 0xaa));
    const snap = await client.createSnapshot(vm.ref, { name: 'nbd-read' });
    const where = await harness.snapshotNbd('cbt-vm', snap.value, 2000);
    expect(where).toMatchObject({ exportName: snap.value, sizeBytes: 32 * MiB, readOnly: true });
    const out = join(scratch.dir, 'snap-copy.raw');
    // The guest rewrites the region in pieces while the copy runs.
    const overwrite = (async () => {
      for (let off = 0; off < region.length; off += 256 * 1024) {
        await harness.write('cbt-vm', 2000, region.offset + off, Buffer.alloc(256 * 1024, 0xbb));
      }
    })();
    await Promise.all([run('nbdcopy', [where.uri, out], { timeoutMs: 60000 }), overwrite]);
    const copy = readFileSync(out);
    expect(copy.subarray(region.offset, region.offset + region.length).equals(Buffer.alloc(region.length, 0xaa))).toBe(true);
    expect((await harness.read('cbt-vm', 2000, region.offset, 4096)).equals(Buffer.alloc(4096, 0xbb))).toBe(true);
    // And read after the overwrite finished: still the snapshot's data.
    const { stdout } = await run('nbdinfo', ['--map', '--json', where.uri]);
    expect(JSON.parse(stdout)).toEqual(expect.any(Array));
    const after = join(scratch.dir, 'snap-copy2.raw');
    await run('nbdcopy', [where.uri, after], { timeoutMs: 60000 });
    expect(readFileSync(after).equals(copy)).toBe(true);
    await client.removeSnapshot(snap);
    await expect(harness.snapshotNbd('cbt-vm', snap.value, 2000)).rejects.toMatchObject({ status: 404 });
  });

  it('turns a changeId from before an unclean stop into the CBT-reset fault', async () => {
    const vm = await client.findVm({ name: 'cbt-vm' });
    const before = await client.createSnapshot(vm.ref, { name: 'before-crash' });
    const oldId = (await client.getSnapshotDisks(before))[0].changeId as string;
    const lost = await client.createSnapshot(vm.ref, { name: 'lost-in-crash' });
    await client.removeSnapshot(before);
    const disk = await harness.crash('cbt-vm', 2000);
    expect(disk.cbtResets).toBe(1);
    // The snapshot's fleecing overlay died with the daemon.
    await expect(harness.snapshotNbd('cbt-vm', lost.value, 2000)).rejects.toMatchObject({ status: 410 });
    await expect(changed(vm.ref, lost, 2000, '*')).rejects.toBeInstanceOf(InvalidChangeIdError);
    await client.removeSnapshot(lost);
    await harness.write('cbt-vm', 2000, 1 * MiB, Buffer.alloc(4096, 0x55));
    const after = await client.createSnapshot(vm.ref, { name: 'after-crash' });
    const err = await changed(vm.ref, after, 2000, oldId).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidChangeIdError);
    expect((err as InvalidChangeIdError).message).toContain('Error caused by file');
    // A full ("*") query still works and sees everything written so far.
    const all = await changed(vm.ref, after, 2000, '*');
    expect(all.areas).toContainEqual({ start: 1 * MiB, length: GRAIN });
    const newId = (await client.getSnapshotDisks(after))[0].changeId as string;
    expect(newId.split('/')[0]).not.toBe(oldId.split('/')[0]);
    await client.removeSnapshot(after);
  });

  it('detects a daemon killed from outside (kill -9 by pid) as a CBT reset', async () => {
    const vm = await client.findVm({ name: 'cbt-vm' });
    const s1 = await client.createSnapshot(vm.ref, { name: 'pre-kill' });
    const oldId = (await client.getSnapshotDisks(s1))[1].changeId as string;
    await client.removeSnapshot(s1);
    const before = (await harness.vm('cbt-vm')).disks[1];
    process.kill(before.pid, 'SIGKILL');
    await waitFor(async () => (await harness.vm('cbt-vm')).disks[1].cbtResets === before.cbtResets + 1, {
      timeoutMs: 15000,
      message: 'the harness to restart the killed qemu-storage-daemon',
    });
    const s2 = await client.createSnapshot(vm.ref, { name: 'post-kill' });
    await expect(changed(vm.ref, s2, 2001, oldId)).rejects.toBeInstanceOf(InvalidChangeIdError);
    // The data survived the crash: the random content is still allocated.
    expect((await changed(vm.ref, s2, 2001, '*')).areas.length).toBeGreaterThan(0);
    await client.removeSnapshot(s2);
  });

  it('keeps the simulator default VMs, whose disks have no CBT data (FileFault)', async () => {
    const vm = await client.findVm({ name: 'DC0_H0_VM0' });
    await client.enableChangeTracking(vm.ref);
    const snap = await client.createSnapshot(vm.ref, { name: 'default-vm' });
    const err = await client.queryChangedDiskAreasPage(vm.ref, snap, vm.disks[0].key, '*', 0).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidChangeIdError);
    await expect(harness.vm(vm.ref.value)).rejects.toMatchObject({ status: 404 });
    await client.removeSnapshot(snap);
  });

  it('acts as the guest: fill, zero, read, status', async () => {
    const vm = await client.findVm({ name: 'cbt-vm' });
    const base = await client.createSnapshot(vm.ref, { name: 'fill-base' });
    const c0 = (await client.getSnapshotDisks(base))[1].changeId as string;
    const filled = await harness.fill('cbt-vm', 2001, 10, 42);
    const total = filled.reduce((n, a) => n + a.length, 0);
    expect(total).toBe(Math.floor((16 * MiB) / GRAIN / 10) * GRAIN);
    await harness.zero('cbt-vm', 2001, filled[0].start, 4096);
    expect((await harness.read('cbt-vm', 2001, filled[0].start, 4096)).equals(Buffer.alloc(4096))).toBe(true);
    const next = await client.createSnapshot(vm.ref, { name: 'fill-next' });
    // Exactly the filled chunks changed on that disk.
    expect((await changed(vm.ref, next, 2001, c0)).areas).toEqual(filled);
    const status = await harness.vm(vm.ref.value);
    expect(status.disks.map((d) => d.key)).toEqual([2000, 2001]);
    expect(status.disks[1].snapshots.sort()).toEqual([base.value, next.value].sort());
    await expect(harness.write('cbt-vm', 2001, 16 * MiB, Buffer.alloc(1))).rejects.toMatchObject({ status: 400 });
    await expect(harness.writeFile('cbt-vm', 2001, '/x', 'y')).rejects.toMatchObject({ status: 400 });
    await expect(harness.writeFile('fs-vm', 2000, '/../etc/passwd', 'y')).rejects.toMatchObject({ status: 400 });
    await expect(harness.vm('nope')).rejects.toMatchObject({ status: 404 });
    await expect(harness.read('cbt-vm', 7, 0, 1)).rejects.toMatchObject({ status: 404 });
    expect((await harness.vms()).map((v) => v.name).sort()).toEqual(['cbt-vm', 'fs-vm']);
    await client.removeSnapshot(base);
    await client.removeSnapshot(next);
  });

  it('writes a file into the guest ext4 filesystem as a small change', async () => {
    const vm = await client.findVm({ name: 'fs-vm' });
    const s1 = await client.createSnapshot(vm.ref, { name: 'fs1' });
    const c1 = (await client.getSnapshotDisks(s1))[0].changeId as string;
    const res = await harness.writeFile('fs-vm', 2000, '/var/log/backup-test.txt', 'hello from the guest\n');
    expect(res.blocksWritten).toBeGreaterThan(0);
    const s2 = await client.createSnapshot(vm.ref, { name: 'fs2' });
    const delta = await changed(vm.ref, s2, 2000, c1);
    const bytes = delta.areas.reduce((n, a) => n + a.length, 0);
    expect(bytes).toBeGreaterThan(0);
    expect(bytes).toBeLessThanOrEqual(res.blocksWritten * GRAIN);
    // The file is in the snapshot's filesystem.
    const where = await harness.snapshotNbd('fs-vm', s2.value, 2000);
    const raw = join(scratch.dir, 'fs.raw');
    await run('nbdcopy', [where.uri, raw], { timeoutMs: 60000 });
    const part = `${raw}?offset=${1 * MiB}`;
    const cat = await run('debugfs', ['-R', 'cat /var/log/backup-test.txt', part]);
    expect(cat.stdout).toBe('hello from the guest\n');
    await client.removeSnapshot(s1);
    await client.removeSnapshot(s2);
    await harness.assertGuestFsClean('fs-vm', 2000);
  });

  it('writes into directories that already exist without damaging the guest ext4 (e2fsck -fn)', async () => {
    // debugfs `mkdir` of an existing directory used to leave an unconnected
    // directory inode whose block the next write gave to another file.
    for (const [p, content] of [
      ['/var/www/html/index.php', '<?php echo 1;\n'],
      ['/var/www/html/index.php', '<?php echo 2;\n'],
      ['/var/www/html/other.php', 'x'.repeat(50000)],
      ['/etc/hostname', 'renamed\n'],
    ] as const) {
      await harness.writeFile('fs-vm', 2000, p, content);
      await harness.assertGuestFsClean('fs-vm', 2000);
    }
    // Checked a second way: e2fsck on the raw disk at the partition's offset.
    const raw = join(scratch.dir, 'fsck.raw');
    const live = (await harness.vm('fs-vm')).disks[0]!.liveUri;
    await run('nbdcopy', [live, raw], { timeoutMs: 60000 });
    await run('e2fsck', ['-fn', `${raw}?offset=${1 * MiB}`]);
    const cat = await run('debugfs', ['-R', 'cat /var/www/html/index.php', `${raw}?offset=${1 * MiB}`]);
    expect(cat.stdout).toBe('<?php echo 2;\n');
    await expect(harness.writeFile('fs-vm', 2000, '/etc/hostname/inside', 'y')).rejects.toMatchObject({ status: 400 });
    await expect(harness.writeFile('fs-vm', 2000, '/var/www', 'y')).rejects.toMatchObject({ status: 400 });
    await harness.assertGuestFsClean('fs-vm', 2000);
  });
});
