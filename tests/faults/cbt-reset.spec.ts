import { backupOk, guestDigest, leftovers, restorePointDigest, startFaultBed, type FaultBed } from '../support/faults';

/**
 * Scenario 8: change tracking resets between backups (the stand-in's
 * `crash`: its disk daemon is killed, as an unclean host stop resets CBT
 * in vSphere). Disk resize and hot-add: disk-change.spec.ts.
 */

const VM = 'fault-cbt-vm';

describe('fault: CBT reset', () => {
  let bed: FaultBed;

  beforeAll(async () => {
    bed = await startFaultBed({
      vms: [
        {
          name: VM,
          changeTrackingEnabled: true,
          disks: [
            { sizeMiB: 48, content: { type: 'filesystem', filesystem: 'ext4', partitionTable: 'gpt', files: { '/etc/hostname': 'cbt\n' } } },
            { sizeMiB: 32, content: { type: 'random', percent: 30, seed: 5 } },
          ],
        },
      ],
    });
  }, 240_000);

  afterAll(async () => {
    await bed?.stop();
  }, 60_000);

  it('after a CBT reset of one disk the next backup of that disk is a full that says why; the other disk stays incremental', async () => {
    const h = bed.standIn.harness!;
    const [k0, k1] = bed.keys.get(VM)!;
    const full = await backupOk(bed, VM, 'full');
    const before = await restorePointDigest(bed, full.backups.find((b) => b.disk_id === 0)!);
    const crashed = await h.crash(VM, k0!);
    expect(crashed.cbtResets).toBe(1);
    await h.writeFile(VM, k0!, '/after-reset.txt', 'written after the reset\n');
    await h.assertGuestFsClean(VM, k0!);
    await h.fill(VM, k1!, 3, 77);
    const t0 = Date.now();
    const next = await backupOk(bed, VM, 'incremental');
    const d0 = next.backups.find((b) => b.disk_id === 0)!;
    const d1 = next.backups.find((b) => b.disk_id === 1)!;
    expect(d0).toMatchObject({ backup_type: 'full', requested_type: 'incremental', parent_backup_id: null, status: 'completed' });
    expect(d0.fallback_reason).toMatch(/reset change tracking|no longer accepts/);
    expect(d1).toMatchObject({ backup_type: 'incremental', status: 'completed' });
    expect(await restorePointDigest(bed, d0)).toBe(await guestDigest(bed, VM, 0));
    expect(await restorePointDigest(bed, d1)).toBe(await guestDigest(bed, VM, 1));
    // The points committed before the reset still read back as they were.
    expect(await restorePointDigest(bed, full.backups.find((b) => b.disk_id === 0)!)).toBe(before);
    // The job log says it in words.
    expect(next.events.some((e) => e.level === 'warn' && /disk 0: running as a full backup because/.test(e.message))).toBe(true);
    expect(await leftovers(bed)).toEqual([]);
    // And the chain goes on as incrementals after the new full.
    await h.writeFile(VM, k0!, '/later.txt', 'later\n');
    await h.assertGuestFsClean(VM, k0!);
    const again = await backupOk(bed, VM, 'incremental');
    expect(again.backups.find((b) => b.disk_id === 0)).toMatchObject({ backup_type: 'incremental', parent_backup_id: d0.id });
    console.log(`scenario 8 (CBT reset): full-with-reason run took ${((Date.now() - t0) / 1000).toFixed(1)} s; reason: ${d0.fallback_reason}`);
  }, 300_000);
});
