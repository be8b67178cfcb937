import { join } from 'node:path';
import { run } from '@sendense/process';
import { backupOk, guestDigest, leftovers, restorePointDigest, startFaultBed, type BackupRow, type FaultBed } from '../support/faults';

/**
 * Scenario 8 (second half): between backups a VM's disk is extended and a
 * disk is hot-added, as an administrator would (the stand-in's `resize` and
 * `add disk` harness calls: qemu grows or makes the image, the simulator's
 * VirtualDisk follows through ReconfigVM_Task, a resize restarts the disk's
 * change tracking). The resized disk's next backup is a full that names the
 * resize and has the new size; the new disk is a full "because the disk is
 * new" while the other disk stays incremental.
 */

const VM = 'fault-disk-vm';
const MiB = 1024 * 1024;

async function virtualSize(bed: FaultBed, b: Pick<BackupRow, 'repository_path'>): Promise<number> {
  const r = await run('qemu-img', ['info', '-U', '--output=json', join(bed.sys.repoDir, 'local', b.repository_path)], { timeoutMs: 30_000 });
  return (JSON.parse(r.stdout) as { 'virtual-size': number })['virtual-size'];
}

describe('fault: disk resized, disk added between backups', () => {
  let bed: FaultBed;

  beforeAll(async () => {
    bed = await startFaultBed({
      vms: [
        {
          name: VM,
          changeTrackingEnabled: true,
          disks: [{ sizeMiB: 32, content: { type: 'filesystem', filesystem: 'ext4', partitionTable: 'gpt', files: { '/etc/hostname': 'resize\n' } } }],
        },
      ],
    });
  }, 240_000);

  afterAll(async () => {
    await bed?.stop();
  }, 60_000);

  it('a resized disk is backed up as a full that says why, at its new size; a hot-added disk is a full while the other stays incremental', async () => {
    const h = bed.standIn.harness!;
    const keys = bed.keys.get(VM)!;
    const sizes = bed.sizes.get(VM)!;
    const k0 = keys[0]!;

    const full = await backupOk(bed, VM, 'full');
    const full0 = full.backups.find((b) => b.disk_id === 0)!;
    const fullDigest = await restorePointDigest(bed, full0);
    expect(fullDigest).toBe(await guestDigest(bed, VM, 0));
    expect(await virtualSize(bed, full0)).toBe(32 * MiB);

    // Extend the disk 32 -> 48 MiB, then the guest writes in the old part and in the new one.
    const before = (await h.vm(VM)).disks[0]!;
    const grown = await h.resizeDisk(VM, k0, 48);
    expect(grown.capacityBytes).toBe(48 * MiB);
    // Change tracking of the disk starts over (a new epoch): the old changeId gets vCenter's FileFault.
    expect(grown.cbtEpoch).not.toBe(before.cbtEpoch);
    sizes[0] = 48 * MiB;
    await expect(h.resizeDisk(VM, k0, 40)).rejects.toThrow(/can only grow/);
    await h.writeFile(VM, k0, '/after-resize.txt', 'written after the resize\n');
    await h.assertGuestFsClean(VM, k0);
    await h.write(VM, k0, 40 * MiB + 4096, Buffer.alloc(128 * 1024, 0x5a));

    const t0 = Date.now();
    const afterResize = await backupOk(bed, VM, 'incremental');
    const tResize = (Date.now() - t0) / 1000;
    const r0 = afterResize.backups.find((b) => b.disk_id === 0)!;
    expect(r0).toMatchObject({ backup_type: 'full', requested_type: 'incremental', parent_backup_id: null, status: 'completed' });
    expect(r0.fallback_reason).toBe('the disk was resized since the last backup (32 MiB -> 48 MiB)');
    expect(afterResize.events.some((e) => e.level === 'warn' && e.message === `disk 0: running as a full backup because ${r0.fallback_reason}`)).toBe(true);
    // The agent already found the old changeId refused (the stand-in restarted CBT with the resize); the reason names the cause.
    expect(bed.sys.logs.get('capture-agent')!.some((l) => new RegExp(`disk ${k0} full \\((cbt-reset|invalid-change-id)\\)`).test(l))).toBe(true);
    expect(await virtualSize(bed, r0)).toBe(48 * MiB);
    expect(await restorePointDigest(bed, r0)).toBe(await guestDigest(bed, VM, 0));
    // The point committed before the resize still reads back as it was.
    expect(await restorePointDigest(bed, full0)).toBe(fullDigest);
    expect(await leftovers(bed)).toEqual([]);

    // Hot-add a disk; the guest changes disk 0 again.
    const added = await h.addDisk(VM, { sizeMiB: 16, content: { type: 'random', percent: 40, seed: 11 } });
    expect(added.key).toBe(k0 + 1);
    keys.push(added.key);
    sizes.push(16 * MiB);
    await h.writeFile(VM, k0, '/after-add.txt', 'written after the new disk came\n');
    await h.assertGuestFsClean(VM, k0);

    const t1 = Date.now();
    const afterAdd = await backupOk(bed, VM, 'incremental');
    const tAdd = (Date.now() - t1) / 1000;
    const a0 = afterAdd.backups.find((b) => b.disk_id === 0)!;
    const a1 = afterAdd.backups.find((b) => b.disk_id === 1)!;
    expect(a0).toMatchObject({ backup_type: 'incremental', parent_backup_id: r0.id, fallback_reason: null, status: 'completed' });
    expect(a1).toMatchObject({
      backup_type: 'full',
      requested_type: 'incremental',
      parent_backup_id: null,
      fallback_reason: 'the disk is new',
      status: 'completed',
    });
    // The incremental copied the changed blocks only, not the disk.
    expect(a0.bytes_transferred).toBeLessThan(4 * MiB);
    expect(await restorePointDigest(bed, a0)).toBe(await guestDigest(bed, VM, 0));
    expect(await restorePointDigest(bed, a1)).toBe(await guestDigest(bed, VM, 1));
    expect(await virtualSize(bed, a1)).toBe(16 * MiB);
    // The VM now lists both disks.
    const vms = await bed.sys.call<{ vm_name: string; disks: { device_key: number }[] }[]>('GET', '/api/v1/vms');
    expect(vms.body.find((v) => v.vm_name === VM)!.disks.map((d) => d.device_key)).toEqual([k0, added.key]);
    // Everything committed earlier still reads back.
    expect(await restorePointDigest(bed, full0)).toBe(fullDigest);
    expect(await leftovers(bed)).toEqual([]);

    // And both disks go on as incrementals.
    await h.fill(VM, added.key, 5, 21);
    const again = await backupOk(bed, VM, 'incremental');
    expect(again.backups.find((b) => b.disk_id === 0)).toMatchObject({ backup_type: 'incremental', parent_backup_id: a0.id });
    expect(again.backups.find((b) => b.disk_id === 1)).toMatchObject({ backup_type: 'incremental', parent_backup_id: a1.id });
    expect(await restorePointDigest(bed, again.backups.find((b) => b.disk_id === 1)!)).toBe(await guestDigest(bed, VM, 1));
    console.log(
      `scenario 8 (resize/hot-add): full-after-resize run ${tResize.toFixed(1)} s, reason: ${r0.fallback_reason}; ` +
        `after hot-add ${tAdd.toFixed(1)} s: disk 0 ${a0.backup_type} (${a0.bytes_transferred} bytes), disk 1 ${a1.backup_type} (${a1.fallback_reason})`,
    );
  }, 300_000);
});
