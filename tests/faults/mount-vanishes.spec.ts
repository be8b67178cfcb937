import { readFile } from 'node:fs/promises';
import { run, waitFor } from '@sendense/process';
import { backupOk, leftovers, startFaultBed, type FaultBed } from '../support/faults';

/**
 * Scenario 9: a mount's file system vanishes under the restore-service
 * (unmounted from outside; its FUSE daemon killed). Seen once: a mount
 * answered "no such file or directory: /" while GET /restore/mounts still
 * listed it.
 */

const VM = 'fault-mount-vm';

interface Mount {
  mount_id: string;
  mount_path: string;
  partitions: { name: string; fsType: string | null; mounted: boolean; hostPath?: string }[];
}

describe('fault: a mount vanishes under the restore-service', () => {
  let bed: FaultBed;
  let backupId: string;

  beforeAll(async () => {
    bed = await startFaultBed({
      vms: [
        {
          name: VM,
          changeTrackingEnabled: true,
          disks: [{ sizeMiB: 48, content: { type: 'filesystem', filesystem: 'ext4', partitionTable: 'gpt', files: { '/etc/hostname': 'mnt\n' } } }],
        },
      ],
    });
    backupId = (await backupOk(bed, VM, 'full')).backups[0]!.id;
  }, 240_000);

  afterAll(async () => {
    await bed?.stop();
  }, 60_000);

  async function mount(): Promise<{ m: Mount; part: Mount['partitions'][number] }> {
    const r = await bed.sys.call<Mount>('POST', '/api/v1/restore/mount', { backup_id: backupId });
    if (r.status !== 201) throw new Error(`mount answered ${r.status}: ${JSON.stringify(r.body)}`);
    const part = r.body.partitions.find((p) => p.fsType === 'ext4' && p.mounted)!;
    const files = await bed.sys.call<{ entries: { name: string }[] }>('GET', `/api/v1/restore/${r.body.mount_id}/files?path=${part.name}/etc`);
    expect(files.body.entries.map((e) => e.name)).toContain('hostname');
    return { m: r.body, part };
  }

  async function expectGone(m: Mount, part: Mount['partitions'][number], started: number): Promise<number> {
    // A request for its files says the mount is gone (not "no such file: /").
    const files = await bed.sys.call<{ message: string }>('GET', `/api/v1/restore/${m.mount_id}/files?path=${part.name}/etc`);
    expect([404, 410]).toContain(files.status);
    expect(files.body.message).toMatch(/gone|no active mount|not found/i);
    expect(files.body.message).not.toMatch(/no such file or directory: \//);
    // The API stops listing it, and the leftovers are cleaned up.
    await waitFor(async () => (await bed.sys.call<Mount[]>('GET', '/api/v1/restore/mounts')).body.every((x) => x.mount_id !== m.mount_id), {
      timeoutMs: 20_000,
      message: 'the mount to leave the list',
    });
    await waitFor(async () => (await leftovers(bed)).length === 0, { timeoutMs: 20_000, intervalMs: 250, message: 'the mount leftovers to be cleaned up' });
    const rows = await bed.sys.db.prisma.restoreMount.count({ where: { id: m.mount_id } });
    expect(rows).toBe(0);
    return Date.now() - started;
  }

  it('unmounted from outside: not listed any more, its files say it is gone, health says so, leftovers cleaned up', async () => {
    const { m, part } = await mount();
    const t0 = Date.now();
    await run('umount', [part.hostPath ?? `${m.mount_path}/${part.name}`]);
    const ms = await expectGone(m, part, t0);
    const health = await bed.sys.call<{ status: string; dependencies: { name: string; ok: boolean; detail?: string }[] }>('GET', '/api/v1/health');
    const rs = health.body.dependencies.find((d) => d.name === 'restore-service')!;
    expect(rs.ok).toBe(false);
    expect(rs.detail).toContain(m.mount_id);
    expect(rs.detail).toMatch(/no longer mounted/);
    console.log(`scenario 9 (umount from outside): gone and cleaned up after ${ms} ms; health: ${rs.detail}`);
    // Mounting the restore point again works.
    const again = await mount();
    await bed.sys.call('DELETE', `/api/v1/restore/${again.m.mount_id}`);
  }, 120_000);

  it('its FUSE daemon killed: not listed any more, its files say it is gone, leftovers cleaned up', async () => {
    const { m, part } = await mount();
    const ps = await run('ps', ['-eo', 'pid=,args=']);
    const qsd = ps.stdout.split('\n').find((l) => l.includes('qemu-storage-daemon') && l.includes(m.mount_id));
    expect(qsd).toBeDefined();
    const t0 = Date.now();
    const pid = Number(qsd!.trim().split(/\s+/)[0]);
    process.kill(pid, 'SIGKILL');
    // Dead, not dying: a SIGKILLed FUSE daemon takes a moment to leave (zombie or reaped).
    await waitFor(async () => !/^\S+ \([^)]*\) [^Z]/.test(await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')), {
      timeoutMs: 10_000,
      intervalMs: 20,
      message: 'the FUSE daemon to die',
    });
    const ms = await expectGone(m, part, t0);
    console.log(`scenario 9 (FUSE daemon killed): gone and cleaned up after ${ms} ms`);
  }, 120_000);
});
